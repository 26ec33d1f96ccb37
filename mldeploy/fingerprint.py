"""Content fingerprints: deterministic sha256 of files, folders and build inputs.

Pure (reads files only). A folder hashes its sorted relative paths with each file's size and
sha256, so the same bytes give the same fingerprint on every machine and in every order.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
CACHE_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def iter_files(folder: Path) -> Iterable[Path]:
    """Files below a folder, sorted by relative POSIX path; Python caches are not content.

    Symlinked folders are followed, as ``shutil.copytree`` follows them when a model is copied
    (hash and copy must see the same files); a link back to an enclosing folder (a cycle) is skipped.
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        parts = Path(dirpath).relative_to(folder).parts
        enclosing = {os.path.realpath(folder.joinpath(*parts[:i])) for i in range(len(parts))}
        if os.path.realpath(dirpath) in enclosing:
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if d not in CACHE_DIRS)
        for name in filenames:
            if not name.endswith(".pyc"):
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


@dataclass(frozen=True)
class ContentHash:
    sha256: str
    size: int
    files: tuple[str, ...]  # relative POSIX paths (a single file: its name)


def hash_content(path: Path) -> ContentHash:
    """sha256 of a file's bytes, or of a folder's manifest (path, size, sha256 per file)."""
    if path.is_file():
        return ContentHash(sha256_file(path), path.stat().st_size, (path.name,))
    manifest = hashlib.sha256()
    size = 0
    files: list[str] = []
    for file in iter_files(path):
        rel = file.relative_to(path).as_posix()
        file_size = file.stat().st_size
        manifest.update(f"{rel}\0{file_size}\0{sha256_file(file)}\n".encode())
        size += file_size
        files.append(rel)
    return ContentHash(manifest.hexdigest(), size, tuple(files))


def fingerprint(parts: dict[str, Any]) -> str:
    """sha256 of a JSON-canonical mapping of inputs."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


SKIP_DIRS = CACHE_DIRS | {".git", ".venv", "node_modules"}


def stat_fingerprint(path: Path) -> str:
    """A cheap fingerprint from names, sizes and modification times (no reading): any edit changes it.

    Used as a resume key for stages whose real output is checked separately; content hashes stay
    the identity of models and images.
    """
    digest = hashlib.sha256()
    paths = [path] if path.is_file() else []
    if path.is_dir():
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            paths += [Path(dirpath) / name for name in sorted(filenames) if not name.endswith(".pyc")]
    for file in paths:
        try:
            info = file.stat()
        except OSError:
            continue
        digest.update(
            f"{file.relative_to(path) if path.is_dir() else file.name}\0{info.st_size}\0{info.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()
