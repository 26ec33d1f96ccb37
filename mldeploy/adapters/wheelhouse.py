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
from mldeploy.contract import runtime_supports
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


class SdistBuilder(Protocol):
    """Builds a wheel from a source archive somewhere it cannot touch the host (a container without
    network); returns the wheel, or None when it cannot be built there."""

    def __call__(self, sdist: Path, out: Path) -> Path | None: ...


class WheelhouseResolver(Protocol):
    def __call__(
        self,
        home: Path,
        requirement_files: dict[str, str],
        python: str,
        *,
        source_file: str = "",
        index_options: tuple[str, ...] = (),
        python_pin: str | None = None,
        build_sdist: SdistBuilder | None = None,
    ) -> Wheelhouse: ...


@dataclass(frozen=True)
class Unresolvable:
    """A requirement with no wheel for the image's Python, and what is known about it."""

    requirement: str
    wheel_for_pinned_python: bool = False  # the Python the environment file pinned has one
    sdist_only: bool = False  # a source archive exists, but it did not build into a pure-Python wheel


def _pip(args: list[str], timeout: float = PIP_TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-m", "pip", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise TransientError(f"resolving wheels took longer than {timeout:g} s") from exc


def _binary_args(python: str, dest: Path) -> list[str]:
    args = ["download", "--only-binary=:all:", "--dest", str(dest), "--python-version", python]
    major, minor = (int(part) for part in python.split(".")[:2])
    abi = f"cp{major}{minor}" + ("m" if (major, minor) < (3, 8) else "")  # before 3.8 the ABI tag had an 'm'
    args += ["--implementation", "cp", "--abi", abi]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    return args


def _has_wheel(requirement: str, python: str, index_options: tuple[str, ...], scratch: Path) -> bool:
    proc = _pip([*_binary_args(python, scratch), "--no-deps", *index_options, requirement], timeout=300)
    return proc.returncode == 0


def user_requirements(requirement_files: dict[str, str]) -> list[str]:
    """The user's own requirement lines (the runtime's pins are ours and known to resolve)."""
    text = requirement_files.get("user.txt", "")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def find_unresolvable(
    requirement_files: dict[str, str],
    python: str,
    *,
    index_options: tuple[str, ...] = (),
    python_pin: str | None = None,
    scratch: Path,
) -> list[Unresolvable]:
    """Every user requirement that has no wheel for ``python`` on its own (pip stops at the first one)."""
    found = []
    pinned = ".".join(python_pin.split(".")[:2]) if python_pin else None
    for requirement in user_requirements(requirement_files):
        if _has_wheel(requirement, python, index_options, scratch):
            continue
        other = bool(pinned and pinned != python and _has_wheel(requirement, pinned, index_options, scratch))
        found.append(Unresolvable(requirement, wheel_for_pinned_python=other))
    return found


def wheelhouse_key(requirement_files: dict[str, str], python: str, index_options: tuple[str, ...] = ()) -> str:
    digest = hashlib.sha256()
    for name in sorted(requirement_files):
        digest.update(f"{name}\0{requirement_files[name]}\0".encode())
    digest.update(f"{python}\0{','.join(PLATFORMS)}\0{' '.join(index_options)}".encode())
    return digest.hexdigest()[:24]


def resolve_wheelhouse(
    home: Path,
    requirement_files: dict[str, str],
    python: str,
    *,
    source_file: str = "",
    index_options: tuple[str, ...] = (),
    python_pin: str | None = None,
    build_sdist: SdistBuilder | None = None,
) -> Wheelhouse:
    """Download wheels for every requirement file's content for CPython ``python`` on x86_64 Linux.

    When that fails, every requirement is tried on its own so that all the offending ones are named at
    once; a requirement that exists only as a source archive is built (``build_sdist``, away from the
    host) and kept when the result is a pure-Python wheel.
    """
    root = home / "wheelhouses"
    target = root / wheelhouse_key(requirement_files, python, index_options)
    if (target / ".complete").is_file():
        return Wheelhouse(target, tuple(sorted(p.name for p in target.glob("*.whl"))), True, "")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        args = [*_binary_args(python, staging), *index_options]
        for name, content in requirement_files.items():
            req_file = staging / f".{name}"
            req_file.write_text(content)
            args += ["-r", str(req_file)]
        proc = _pip(args)
        log = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if "is ignored" not in line)
        if proc.returncode != 0 and _NETWORK.search(log) and "No matching distribution" not in log:
            raise TransientError(
                "the package index is unreachable while resolving wheels",
                diagnosis=diagnosis.dependency_failure(log, source_file),
            )
        if proc.returncode != 0:
            proc, log = _resolve_the_rest(
                staging, args, requirement_files, python, index_options, python_pin, build_sdist, source_file, log
            )
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


def _resolve_the_rest(
    staging: Path,
    args: list[str],
    requirement_files: dict[str, str],
    python: str,
    index_options: tuple[str, ...],
    python_pin: str | None,
    build_sdist: SdistBuilder | None,
    source_file: str,
    log: str,
) -> tuple[subprocess.CompletedProcess[str], str]:
    """After a failed resolution: build what only has a source archive, or name everything that failed."""
    scratch = staging / ".scratch"
    scratch.mkdir()
    failing = find_unresolvable(
        requirement_files, python, index_options=index_options, python_pin=python_pin, scratch=scratch
    )
    if not failing:  # each resolves alone: a conflict between them (pip's own words say which)
        found = diagnosis.dependency_failure(log, source_file)
        raise PermanentError(found.summary, diagnosis=found)
    built_dir = staging / ".built"
    still: list[Unresolvable] = []
    for item in failing:
        wheel = _build_from_source(item.requirement, scratch, built_dir, build_sdist) if build_sdist else None
        if wheel is None:
            still.append(
                Unresolvable(
                    item.requirement,
                    item.wheel_for_pinned_python,
                    sdist_only=bool(build_sdist and _sdist_path(item.requirement, scratch) is not None),
                )
            )
    if still:
        found = diagnosis.unresolvable_requirements(
            [(u.requirement, u.wheel_for_pinned_python, u.sdist_only) for u in still],
            python,
            python_pin,
            source_file,
            runtime_can_use=bool(python_pin) and runtime_supports(python_pin or ""),
        )
        raise PermanentError(found.summary, diagnosis=found)
    proc = _pip([*args, "--find-links", str(built_dir)])
    log += "\n" + proc.stdout + proc.stderr
    if proc.returncode != 0:
        found = diagnosis.dependency_failure(log, source_file)
        raise PermanentError(found.summary, diagnosis=found)
    for wheel in built_dir.glob("*.whl"):
        shutil.copy2(wheel, staging / wheel.name)
    return proc, log


def _sdist_path(requirement: str, scratch: Path) -> Path | None:
    found = sorted((scratch / "sdists").glob("*.tar.gz")) + sorted((scratch / "sdists").glob("*.zip"))
    name = requirement.split("=")[0].split("<")[0].split(">")[0].split("[")[0].strip().lower().replace("_", "-")
    return next((p for p in found if p.name.lower().replace("_", "-").startswith(name)), None)


def _build_from_source(requirement: str, scratch: Path, out: Path, build_sdist: SdistBuilder) -> Path | None:
    """The requirement's source archive from the index (no code of it runs on the host), built elsewhere."""
    from mldeploy.adapters.package_index import download_sdist

    sdist = download_sdist(requirement, scratch / "sdists")
    if sdist is None:
        return None
    out.mkdir(exist_ok=True)
    wheel = build_sdist(sdist, out)
    if wheel is None or not wheel.name.endswith("-none-any.whl"):
        if wheel is not None:
            wheel.unlink()  # compiled for the build machine, not what the image's Python can take on faith
        return None
    return wheel
