"""Files a spec names: resolved inside the spec's folder, checked to exist, and their content checked.

The validators here read the spec's folder from the validation context (``SpecContext``): a
path resolves relative to that folder and must stay inside it — or inside a root the *user*
allowed on the command line, never one the spec names. Problems found *inside* a named file
(a conda file, a requirements file, extra Dockerfile steps, the scoring script) travel as one
``spec_problems`` error that carries every problem with its own file and field.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from mldeploy.errors import SpecError, SpecProblem
from mldeploy.fingerprint import UnsafeFile, walk_files
from mldeploy.spec.types import Fix, spec_error

PathKind = Literal["file", "folder", "file or folder"]


DEFAULT_MAX_MODEL_BYTES = 20 * 1024**3  # a model or source folder larger than this is refused (configurable)


@dataclass(frozen=True)
class UserLimits:
    """What the person running mldeploy allows a spec (command line, ~/.mldeploy/config.yaml) — never the spec."""

    allowed_roots: tuple[Path, ...] = ()  # folders outside the spec's own that its paths may name
    max_bytes: int = DEFAULT_MAX_MODEL_BYTES  # the largest model or source folder
    allow_direct_urls: bool = False  # requirements by URL or local path (the deploying machine fetches them)


@dataclass(frozen=True)
class SpecContext:
    """What validation needs to know beyond the document: where the spec lives, what may be read."""

    spec_path: Path
    limits: UserLimits = field(default_factory=UserLimits)
    notices: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.spec_path.parent

    def roots(self) -> tuple[Path, ...]:
        return (Path(os.path.realpath(self.root)), *(Path(os.path.realpath(r)) for r in self.limits.allowed_roots))


def context_of(info: ValidationInfo) -> SpecContext:
    context = info.context
    if not isinstance(context, SpecContext):
        raise TypeError("the service spec is validated with a SpecContext (use mldeploy.spec.load_spec)")
    return context


def problems_error(problems: list[SpecProblem]) -> PydanticCustomError:
    """One validation error that carries several problems, each with its own file and field."""
    return PydanticCustomError(
        "spec_problems", "{count} problem(s)", {"count": len(problems), "problems": tuple(problems)}
    )


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def resolve_path(value: Any, info: ValidationInfo, kind: PathKind, *, base: Path | None = None) -> Path:
    """``value`` relative to ``base`` (default: the spec's folder), resolved and contained."""
    context = context_of(info)
    if not isinstance(value, str) or not value.strip():
        raise spec_error(f"must be a relative path (text), got {value!r}", "write the path as text")
    if any(ord(ch) < 32 for ch in value):
        raise spec_error(f"{value!r} contains a control character (NUL, newline...)", "remove it")
    real = Path(os.path.realpath((base or context.root) / value))
    if not _inside(real, context.roots()):
        raise spec_error(
            f"{value!r} leads outside the spec's folder",
            f"keep every file the spec names inside {context.root}; to allow another folder, pass "
            "--allow-root on the command line (a spec cannot widen its own reach)",
            "path_outside",
        )
    exists = real.is_file() if kind == "file" else real.is_dir() if kind == "folder" else real.exists()
    if not exists:
        what = "it is a folder; name a file" if kind == "file" and real.is_dir() else "create it or fix the path"
        if not os.path.lexists(real) or real.is_dir() or kind == "folder":
            raise spec_error(f"{kind} {value!r} not found", f"{what} (looked at {real})", "path_not_found")
    try:  # nothing but regular files, links only inside the allowed folders, within the size limit
        walk_files(real, context.roots(), context.limits.max_bytes if kind != "file" else None)
    except UnsafeFile as exc:
        where = Path(exc.path)
        shown = where.relative_to(context.root).as_posix() if where.is_relative_to(context.root) else str(where)
        raise spec_error(
            f"{shown} {exc.reason}",
            "name only regular files and folders inside the spec's folder; copy linked files in; "
            "raise max_model_gb in ~/.mldeploy/config.yaml for a larger model",
            "unsafe_file",
        ) from None
    return real


def spec_path_validator(kind: PathKind) -> BeforeValidator:
    """Resolve a path field inside the spec's folder (see :func:`resolve_path`)."""
    return BeforeValidator(lambda value, info: resolve_path(value, info, kind))


FIX_PATH = Fix("name a path relative to the spec's folder, inside it")
SpecFolder = Annotated[Path, spec_path_validator("folder"), FIX_PATH]
SpecFileOrFolder = Annotated[Path, spec_path_validator("file or folder"), FIX_PATH]


# --- what is inside the named files --------------------------------------------------------------


def _check_environment_file(path: Path, info: ValidationInfo) -> Path:
    from mldeploy.environment import load_environment

    conda = info.field_name == "conda_file"
    try:
        load_environment(
            path if conda else None,
            None if conda else path,
            allow_direct_urls=context_of(info).limits.allow_direct_urls,
        )
    except SpecError as exc:
        raise problems_error(exc.problems) from None
    return path


EnvironmentFile = Annotated[Path, spec_path_validator("file"), AfterValidator(_check_environment_file), FIX_PATH]


def _check_dockerfile_steps(path: Path, info: ValidationInfo) -> Path:
    from mldeploy.dockerfile import check_extra_steps

    spec_file = str(context_of(info).spec_path)
    found = check_extra_steps(path.read_text(encoding="utf-8", errors="replace"))
    if found:
        raise problems_error(
            [
                SpecProblem(
                    spec_file,
                    f"environment.extra_dockerfile_steps (line {line})",
                    message,
                    "allowed instructions: RUN, ENV, ARG, LABEL",
                )
                for line, message in found
            ]
        )
    return path


DockerfileSteps = Annotated[Path, spec_path_validator("file"), AfterValidator(_check_dockerfile_steps), FIX_PATH]


def entry_script_problems(path: Path) -> list[tuple[str, str]]:
    """(message, fix) for a scoring script that does not compile or lacks init()/run()."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        return [(f"{path.name} does not compile: {exc.msg} at line {exc.lineno}", "fix the syntax error in the script")]
    except UnicodeDecodeError:
        return [(f"{path.name} is not UTF-8 text", "save the scoring script as UTF-8")]
    except ValueError as exc:  # "source code string cannot contain null bytes"
        return [(f"{path.name} does not compile: {exc}", "remove the NUL bytes from the scoring script")]
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    return [
        (f"{path.name} defines no top-level {name}()", f"add 'def {name}(...)' (see the scoring contract in README)")
        for name in ("init", "run")
        if name not in defined
    ]
