"""The embedded, versioned model registry: a folder, no server.

Layout: ``<home>/models/<name>/<version>/`` holding ``model.json`` and ``files/<basename>``.
A version is written into a temporary folder and renamed into place under a per-model lock,
so a crash mid-register leaves no half model and two writers never take the same number.
The same bytes (and file name) never make a new version.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mldeploy import diagnosis
from mldeploy.errors import PermanentError
from mldeploy.fingerprint import UnsafeFile, fingerprint, hash_content, stat_fingerprint, walk_files

STAT_INDEX = "stat-index.json"  # cheap identity (path, names, sizes, mtimes) -> version: skips rehashing


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    sha256: str
    size: int
    files: tuple[str, ...]
    basename: str  # the registered file or folder name, kept under AZUREML_MODEL_DIR
    is_folder: bool
    created: str
    source: str  # where it was registered from
    source_spec: str
    description: str = ""

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["files"] = list(self.files)
        return data

    @staticmethod
    def from_dict(data: dict[str, object]) -> ModelVersion:
        values = dict(data)
        values["files"] = tuple(values.get("files", ()))  # type: ignore[arg-type]
        return ModelVersion(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Registrations:
    """The models of one service, in the spec's order (one, or several with ``models:``)."""

    items: tuple[Registration, ...]

    @property
    def models(self) -> tuple[ModelVersion, ...]:
        return tuple(item.model for item in self.items)

    @property
    def reused(self) -> bool:
        """Every model was seen unchanged before (nothing read again): the stage shows as cached."""
        return all(item.reused for item in self.items)

    @property
    def label(self) -> str:
        return ",".join(model.label for model in self.models)


def _bounded_copy(source: Path, target: Path, size: int) -> None:
    """Copy at most the bytes that were counted: a file that grows meanwhile (a pipe, a log) is refused."""
    copied = 0
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(1 << 20):
            copied += len(chunk)
            if copied > size:
                raise UnsafeFile(source, "grew while it was being registered; register again")
            writer.write(chunk)
    shutil.copystat(source, target)


@dataclass(frozen=True)
class Registration:
    model: ModelVersion
    created_new: bool
    reused: bool = False  # this very source, unchanged, was registered before: nothing was read again


class ModelRegistry:
    def __init__(self, home: Path) -> None:
        self.root = home / "models"

    def _dir(self, name: str) -> Path:
        return self.root / name

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        folder = self._dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def versions(self, name: str) -> list[ModelVersion]:
        folder = self._dir(name)
        if not folder.is_dir():
            return []
        found = []
        for entry in folder.iterdir():
            card = entry / "model.json"
            if entry.name.isdigit() and card.is_file():
                found.append(ModelVersion.from_dict(json.loads(card.read_text())))
        return sorted(found, key=lambda m: m.version)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.versions(p.name))

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        versions = self.versions(name)
        if not versions:
            raise PermanentError(f"model {name!r} is not registered (see 'mldeploy models list')")
        if version is None:
            return versions[-1]
        for model in versions:
            if model.version == version:
                return model
        known = ", ".join(str(m.version) for m in versions)
        raise PermanentError(f"model {name!r} has no version {version} (known: {known})")

    def files_path(self, model: ModelVersion) -> Path:
        """The folder whose single entry is the registered file or folder (the AZUREML_MODEL_DIR content)."""
        return self._dir(model.name) / str(model.version) / "files"

    def _stat_key(self, source: Path) -> str:
        return fingerprint({"source": str(source.resolve()), "stat": stat_fingerprint(source)})

    def _known(self, name: str, source: Path) -> ModelVersion | None:
        """The version registered from exactly this file or folder, unchanged since (no hashing)."""
        index = self._dir(name) / STAT_INDEX
        try:
            version = json.loads(index.read_text()).get(self._stat_key(source))
        except (OSError, ValueError):
            return None
        found = [m for m in self.versions(name) if m.version == version and m.basename == source.name]
        return found[0] if found else None

    def _remember(self, name: str, source: Path, model: ModelVersion) -> None:
        index = self._dir(name) / STAT_INDEX
        try:
            known = json.loads(index.read_text())
        except (OSError, ValueError):
            known = {}
        known[self._stat_key(source)] = model.version
        staging = index.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(json.dumps(known, indent=1))
        os.replace(staging, index)

    def register(
        self,
        name: str,
        source: Path,
        *,
        source_spec: str = "",
        description: str = "",
        force: bool = False,
        roots: Sequence[Path] | None = None,
        max_bytes: int | None = None,
        version: int | None = None,
    ) -> Registration:
        """Register ``source`` (a file or folder) under ``name``; the same bytes keep their version.

        ``version`` (a number carried over from an Azure ML workspace, which scripts may have in their paths):
        these bytes as that version — reused when it holds them, created when the number is free, refused
        (before anything is written) when it holds other bytes.

        A source unchanged since it was last registered (same path, names, sizes and times) is not
        hashed again, unless ``force``. Only regular files are read, links only inside ``roots``
        (default: the source itself), at most ``max_bytes`` in all (see fingerprint.walk_files).
        """
        if not force:
            with self._lock(name):
                known = self._known(name, source)
            if known is not None and version in (None, known.version):
                return Registration(known, created_new=False, reused=True)
        content = hash_content(source, roots, max_bytes)
        with self._lock(name):
            folder = self._dir(name)
            for stale in folder.glob(".tmp-*"):  # left by a crash mid-register; we hold the lock
                shutil.rmtree(stale, ignore_errors=True)
            existing = self.versions(name)
            for model in existing:
                same = model.sha256 == content.sha256 and model.basename == source.name
                if version is not None and model.version == version and not same:
                    found = diagnosis.model_version_taken(name, version, str(model.source), str(source))
                    raise PermanentError(found.summary, diagnosis=found)
                if same and version in (None, model.version):
                    self._remember(name, source, model)
                    return Registration(model, created_new=False)
            if version is None:
                version = (existing[-1].version if existing else 0) + 1
            model = ModelVersion(
                name=name,
                version=version,
                sha256=content.sha256,
                size=content.size,
                files=content.files,
                basename=source.name,
                is_folder=source.is_dir(),
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                source=str(source),
                source_spec=source_spec,
                description=description,
            )
            staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
            try:
                files = staging / "files"
                files.mkdir()
                target = files / source.name if source.is_dir() else files
                for file in walk_files(source, roots, max_bytes):  # regular files only; links materialised
                    (target / file.rel).parent.mkdir(parents=True, exist_ok=True)
                    _bounded_copy(file.real, target / file.rel, file.size)
                # Verify what landed is what was hashed: a file changing mid-copy must not be registered.
                if hash_content(files / source.name).sha256 != content.sha256:
                    raise PermanentError(f"model {source} changed while it was being registered; register again")
                card = staging / "model.json"
                card.write_text(json.dumps(model.to_dict(), indent=2, sort_keys=True))
                with card.open("rb") as handle:
                    os.fsync(handle.fileno())
                staging.chmod(0o755)
                os.rename(staging, folder / str(version))
            except BaseException:  # a failed copy (disk full, permissions) leaves nothing behind
                shutil.rmtree(staging, ignore_errors=True)
                raise
            self._remember(name, source, model)
            return Registration(model, created_new=True)
