"""Content fingerprints: the same bytes give the same hash in any order, any change gives another."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mldeploy.fingerprint import UnsafeFile, fingerprint, hash_content, walk_files

FILES = {
    "weights.json": b'{"w": [1, 2, 3]}',
    "labels.json": b'["a", "b"]',
    "sub/notes.txt": b"trained on 2024-05-01\n",
    "sub/deeper/vocab.txt": b"x\ny\n",
}


def _make(folder: Path, files: dict[str, bytes], order: list[str] | None = None) -> Path:
    for rel in order or list(files):
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[rel])
    return folder


def test_single_file_is_its_sha256(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"model bytes")
    content = hash_content(path)
    assert content.sha256 == hashlib.sha256(b"model bytes").hexdigest()
    assert content.size == len(b"model bytes")
    assert content.files == ("model.pkl",)


def test_same_content_in_a_different_creation_order_has_the_same_hash(tmp_path: Path) -> None:
    first = _make(tmp_path / "a" / "model", FILES)
    second = _make(tmp_path / "b" / "model", FILES, order=list(reversed(FILES)))
    assert hash_content(first) == hash_content(second)
    assert hash_content(first).files == ("labels.json", "sub/deeper/vocab.txt", "sub/notes.txt", "weights.json")
    assert hash_content(first).size == sum(len(b) for b in FILES.values())


def test_folder_location_does_not_matter(tmp_path: Path) -> None:
    here = hash_content(_make(tmp_path / "x", FILES))
    there = hash_content(_make(tmp_path / "y" / "z", FILES))
    assert here.sha256 == there.sha256


def test_one_changed_byte_changes_the_hash(tmp_path: Path) -> None:
    original = hash_content(_make(tmp_path / "a", FILES))
    changed = dict(FILES, **{"sub/notes.txt": b"trained on 2024-05-02\n"})
    assert hash_content(_make(tmp_path / "b", changed)).sha256 != original.sha256


def test_a_renamed_file_changes_the_hash(tmp_path: Path) -> None:
    original = hash_content(_make(tmp_path / "a", FILES))
    renamed = dict(FILES)
    renamed["sub/NOTES.txt"] = renamed.pop("sub/notes.txt")
    assert hash_content(_make(tmp_path / "b", renamed)).sha256 != original.sha256


def test_a_file_moved_to_another_folder_changes_the_hash(tmp_path: Path) -> None:
    original = hash_content(_make(tmp_path / "a", FILES))
    moved = dict(FILES)
    moved["sub/deeper/notes.txt"] = moved.pop("sub/notes.txt")
    assert hash_content(_make(tmp_path / "b", moved)).sha256 != original.sha256


def test_an_added_empty_file_changes_the_hash(tmp_path: Path) -> None:
    original = hash_content(_make(tmp_path / "a", FILES))
    assert hash_content(_make(tmp_path / "b", dict(FILES, **{"empty": b""}))).sha256 != original.sha256


def test_python_caches_are_not_content(tmp_path: Path) -> None:
    clean = hash_content(_make(tmp_path / "a", FILES))
    with_caches = _make(tmp_path / "b", FILES)
    _make(
        with_caches,
        {
            "__pycache__/score.cpython-311.pyc": b"\x00bytecode",
            "sub/helper.pyc": b"\x00more",
            ".pytest_cache/v/cache": b"{}",
        },
    )
    assert hash_content(with_caches) == clean
    assert all("__pycache__" not in f.rel and not f.rel.endswith(".pyc") for f in walk_files(with_caches))


def test_symlinked_folders_inside_the_allowed_roots_are_followed_like_a_copy(tmp_path: Path) -> None:
    shared = _make(tmp_path / "shared", {"vocab.txt": b"x\n"})
    linked = _make(tmp_path / "linked", {"weights.json": b"{}"})
    os.symlink(shared, linked / "vocab")
    copied = _make(tmp_path / "copied", {"weights.json": b"{}", "vocab/vocab.txt": b"x\n"})
    assert hash_content(linked, roots=[tmp_path]) == hash_content(copied)
    with pytest.raises(UnsafeFile, match="outside the allowed folder"):
        hash_content(linked)  # by default a link may not leave the folder itself


def test_a_symlink_cycle_does_not_hang(tmp_path: Path) -> None:
    folder = _make(tmp_path / "model", {"sub/a.txt": b"a"})
    os.symlink("..", folder / "sub" / "up")
    assert hash_content(folder).files == ("sub/a.txt",)


def test_fingerprint_is_independent_of_key_order() -> None:
    a = fingerprint({"model": ["m", 1, "abc"], "dockerfile": "FROM x", "nested": {"b": 2, "a": 1}})
    b = fingerprint({"nested": {"a": 1, "b": 2}, "dockerfile": "FROM x", "model": ["m", 1, "abc"]})
    assert a == b
    assert len(a) == 64


def test_fingerprint_changes_with_any_value() -> None:
    base = {"dockerfile": "FROM x", "model": ["m", 1]}
    assert fingerprint(base) != fingerprint({"dockerfile": "FROM y", "model": ["m", 1]})
    assert fingerprint(base) != fingerprint({"dockerfile": "FROM x", "model": ["m", 2]})
