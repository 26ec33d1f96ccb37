"""Content fingerprints: deterministic sha256 of files, folders and build inputs.

Pure (reads files only). A folder hashes its sorted relative paths with each file's size and
sha256, so the same bytes give the same fingerprint on every machine and in every order. Every
walk refuses what a hostile spec could point at: links out of the allowed folders, devices, FIFOs,
sockets, /proc-like files and folders larger than the limit — before reading a byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mldeploy.errors import PermanentError

CHUNK = 1 << 20
CACHE_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}


PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))


class UnsafeFile(PermanentError):
    """A file a spec names (or one inside a folder it names) that mldeploy must not read."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (UnsafeFile, (self.path, self.reason))


@dataclass(frozen=True)
class TreeFile:
    rel: str  # relative POSIX path inside the walked folder (a single file: its name)
    real: Path  # where the bytes are (the target of a symlink), checked to be a regular file
    size: int


def _check_inside(shown: Path, real: Path, roots: Sequence[Path]) -> None:
    if not any(real == root or real.is_relative_to(root) for root in roots):
        raise UnsafeFile(shown, f"is a link that leads outside the allowed folder (to {real})")
    if any(real == pseudo or real.is_relative_to(pseudo) for pseudo in PSEUDO_FILESYSTEMS):
        raise UnsafeFile(shown, f"is on a pseudo file system ({real})")


def _check_regular(shown: Path, real: Path, roots: Sequence[Path]) -> os.stat_result:
    _check_inside(shown, real, roots)
    info = os.stat(real)
    if not stat.S_ISREG(info.st_mode):
        kind = (
            "a device"
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
            else "a FIFO"
            if stat.S_ISFIFO(info.st_mode)
            else "a socket"
            if stat.S_ISSOCK(info.st_mode)
            else "not a regular file"
        )
        raise UnsafeFile(shown, f"is {kind}: only regular files and folders can be read")
    return info


def walk_files(top: Path, roots: Sequence[Path] | None = None, max_bytes: int | None = None) -> list[TreeFile]:
    """Every regular file of ``top`` (a file or a folder), sorted by relative path; Python caches skipped.

    A symlink is followed only when its target stays inside ``roots`` (default: ``top`` itself);
    devices, FIFOs, sockets, pseudo file systems and links that leave raise :class:`UnsafeFile`, and so
    does a total size above ``max_bytes`` — all before a byte is read. A link back to an enclosing
    folder (a cycle) is skipped.
    """
    top = Path(os.path.abspath(top))
    allowed = [Path(os.path.realpath(r)) for r in (roots or [top])]
    if not top.is_dir():
        info = _check_regular(top, Path(os.path.realpath(top)), allowed)
        found = [TreeFile(top.name, Path(os.path.realpath(top)), info.st_size)]
    else:
        found = []
        _check_inside(top, Path(os.path.realpath(top)), allowed)
        for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
            here = Path(dirpath)
            parts = here.relative_to(top).parts
            enclosing = {os.path.realpath(top.joinpath(*parts[:i])) for i in range(len(parts))}
            if os.path.realpath(here) in enclosing:
                dirnames[:] = []
                continue
            for name in dirnames:
                _check_inside(here / name, Path(os.path.realpath(here / name)), allowed)
            dirnames[:] = sorted(d for d in dirnames if d not in CACHE_DIRS)
            for name in filenames:
                if name.endswith(".pyc"):
                    continue
                shown = here / name
                real = Path(os.path.realpath(shown))
                info = _check_regular(shown, real, allowed)
                found.append(TreeFile(shown.relative_to(top).as_posix(), real, info.st_size))
    total = sum(f.size for f in found)
    if max_bytes is not None and total > max_bytes:
        raise UnsafeFile(top, f"holds {total / 1e9:.2f} GB, more than the limit of {max_bytes / 1e9:.2f} GB")
    return sorted(found, key=lambda f: f.rel)


def sha256_file(path: Path, size: int | None = None) -> str:
    """sha256 of a file's bytes; with ``size``, a file that is longer than announced is refused."""
    digest = hashlib.sha256()
    read = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            read += len(chunk)
            if size is not None and read > size:
                raise UnsafeFile(path, "grew while it was being read")
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ContentHash:
    sha256: str
    size: int
    files: tuple[str, ...]  # relative POSIX paths (a single file: its name)


def hash_content(path: Path, roots: Sequence[Path] | None = None, max_bytes: int | None = None) -> ContentHash:
    """sha256 of a file's bytes, or of a folder's manifest (path, size, sha256 per file)."""
    files = walk_files(path, roots, max_bytes)
    if not path.is_dir():
        (only,) = files
        return ContentHash(sha256_file(only.real, only.size), only.size, (path.name,))
    manifest = hashlib.sha256()
    for file in files:
        manifest.update(f"{file.rel}\0{file.size}\0{sha256_file(file.real, file.size)}\n".encode())
    return ContentHash(manifest.hexdigest(), sum(f.size for f in files), tuple(f.rel for f in files))


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
