"""Deploy targets behind one protocol (see base.py). Adding one means adding it here."""

from __future__ import annotations

from mldeploy.targets.base import Target


def available_kinds() -> tuple[str, ...]:
    return ("local",)


def make_target(kind: str) -> Target:
    if kind == "local":
        from mldeploy.targets.local import LocalDockerTarget

        return LocalDockerTarget.default()
    raise ValueError(f"target {kind!r} is not available in this version (available: {', '.join(available_kinds())})")
