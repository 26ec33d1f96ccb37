"""Assemble a Docker build context folder from a plan: Dockerfile, wheels, runtime, model, app.

Files are hard-linked where possible (the wheelhouse and the registry live on the same disk),
so a context for a large model costs no copy.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from mldeploy.fingerprint import walk_files
from mldeploy.plan import RUNTIME_DIR, BuildPlan


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _copy_tree(src: Path, dst: Path, roots: Sequence[Path] | None = None) -> None:
    """Regular files only, links followed only inside ``roots`` (see fingerprint.walk_files)."""
    if not src.is_dir():
        (only,) = walk_files(src, roots)
        _link_or_copy(only.real, dst / src.name)
        return
    for file in walk_files(src, roots):
        _link_or_copy(file.real, dst / file.rel)


def write_context(
    context: Path,
    plan: BuildPlan,
    *,
    wheels: Path,
    models: Sequence[tuple[str, int, Path]],
    app: Path,
    app_roots: Sequence[Path],
) -> None:
    """Fill ``context`` (an empty folder). ``models``: (name, version, the folder holding the registered file or
    folder) each; ``app`` is the entry script or source folder, whose links may only lead inside ``app_roots``."""
    (context / "Dockerfile").write_text(plan.dockerfile)
    for name, content in plan.requirement_files.items():
        (context / "requirements").mkdir(exist_ok=True)
        (context / "requirements" / name).write_text(content)
    (context / "wheels").mkdir()
    for wheel in wheels.glob("*.whl"):
        _link_or_copy(wheel, context / "wheels" / wheel.name)
    _copy_tree(RUNTIME_DIR, context / "runtime")
    for name, version, files in models:
        target = context / "model" / name / str(version)
        target.mkdir(parents=True)
        for entry in files.iterdir():
            _copy_tree(entry, target) if entry.is_file() else _copy_tree(entry, target / entry.name)
    (context / "app").mkdir()
    # a source directory keeps its own folder under the app folder, as the classic image had it
    _copy_tree(app, context / "app" / app.name if app.is_dir() else context / "app", app_roots)
    (context / ".dockerignore").write_text("**/__pycache__\n**/*.pyc\n")
