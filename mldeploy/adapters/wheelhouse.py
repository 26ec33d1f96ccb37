"""Resolve an image's Python dependencies on the host into a cached wheelhouse.

The build installs from these wheels with ``--no-index``: builds are hermetic (no network
inside the build), reproducible, and a rebuild with the same requirements reuses the folder.
A wheelhouse is keyed by the requirements, the target Python and the platform tags, written
to a temporary folder and renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mldeploy import diagnosis
from mldeploy.errors import PermanentError, TransientError

PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64")
PIP_TIMEOUT_SECONDS = 900
_NETWORK = re.compile(
    r"Could not fetch URL|connection error|Read timed out|ConnectTimeout|"
    r"Temporary failure in name resolution|NewConnectionError",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Wheelhouse:
    path: Path
    wheels: tuple[str, ...]
    cached: bool
    log: str


class WheelhouseResolver(Protocol):
    def __call__(
        self, home: Path, requirement_files: dict[str, str], python: str, *, source_file: str = ""
    ) -> Wheelhouse: ...


def wheelhouse_key(requirement_files: dict[str, str], python: str) -> str:
    digest = hashlib.sha256()
    for name in sorted(requirement_files):
        digest.update(f"{name}\0{requirement_files[name]}\0".encode())
    digest.update(f"{python}\0{','.join(PLATFORMS)}".encode())
    return digest.hexdigest()[:24]


def resolve_wheelhouse(
    home: Path, requirement_files: dict[str, str], python: str, *, source_file: str = ""
) -> Wheelhouse:
    """Download wheels for every requirement file's content for CPython ``python`` on x86_64 Linux."""
    root = home / "wheelhouses"
    target = root / wheelhouse_key(requirement_files, python)
    if (target / ".complete").is_file():
        return Wheelhouse(target, tuple(sorted(p.name for p in target.glob("*.whl"))), True, "")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        args = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--only-binary=:all:",
            "--dest",
            str(staging),
            "--python-version",
            python,
            "--implementation",
            "cp",
            "--abi",
            f"cp{python.replace('.', '')}",
        ]
        for platform in PLATFORMS:
            args += ["--platform", platform]
        for name, content in requirement_files.items():
            req_file = staging / f".{name}"
            req_file.write_text(content)
            args += ["-r", str(req_file)]
        try:
            proc = subprocess.run(
                args,
                capture_output=True,
                text=True,
                timeout=PIP_TIMEOUT_SECONDS,
                env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TransientError(f"resolving wheels took longer than {PIP_TIMEOUT_SECONDS} s") from exc
        log = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if "is ignored" not in line)
        if proc.returncode != 0:
            if _NETWORK.search(log) and "No matching distribution" not in log:
                raise TransientError(
                    "the package index is unreachable while resolving wheels",
                    diagnosis=diagnosis.dependency_failure(log, source_file),
                )
            found = diagnosis.dependency_failure(log, source_file)
            raise PermanentError(found.summary, diagnosis=found)
        for req_file in staging.glob(".*.txt"):
            req_file.unlink()
        (staging / ".complete").write_text("ok\n")
        try:
            os.rename(staging, target)
        except OSError:  # another run finished the same wheelhouse first
            shutil.rmtree(staging, ignore_errors=True)
        return Wheelhouse(target, tuple(sorted(p.name for p in target.glob("*.whl"))), False, log)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
