"""Assemble a Docker build context folder from a plan: Dockerfile, wheels, runtime, model, app.

Files are hard-linked where possible (the wheelhouse and the registry live on the same disk),
so a context for a large model costs no copy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mldeploy.fingerprint import iter_files
from mldeploy.plan import RUNTIME_DIR, BuildPlan


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _copy_tree(src: Path, dst: Path) -> None:
    if src.is_file():
        _link_or_copy(src, dst / src.name)
        return
    for file in iter_files(src):
        _link_or_copy(file, dst / file.relative_to(src))


def write_context(context: Path, plan: BuildPlan, *, wheels: Path, model_files: Path, app: Path) -> None:
    """Fill ``context`` (an empty folder). ``model_files`` holds the registered file or folder."""
    (context / "Dockerfile").write_text(plan.dockerfile)
    for name, content in plan.requirement_files.items():
        (context / "requirements").mkdir(exist_ok=True)
        (context / "requirements" / name).write_text(content)
    (context / "wheels").mkdir()
    for wheel in wheels.glob("*.whl"):
        _link_or_copy(wheel, context / "wheels" / wheel.name)
    _copy_tree(RUNTIME_DIR, context / "runtime")
    (context / "model").mkdir()
    for entry in model_files.iterdir():
        _copy_tree(entry, context / "model") if entry.is_file() else _copy_tree(entry, context / "model" / entry.name)
    (context / "app").mkdir()
    _copy_tree(app, context / "app")
    (context / ".dockerignore").write_text("**/__pycache__\n**/*.pyc\n")
