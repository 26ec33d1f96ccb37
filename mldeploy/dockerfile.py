"""Render the service Dockerfile to a string (tested against golden files).

Pure. Layers go from what changes least to what changes most, so a change to ``score.py``
rebuilds only the last layer: user and venv → wheels + pip install → extra steps → runtime →
model → app files. Values that reach the Dockerfile were validated by :mod:`mldeploy.spec`;
this module re-checks them anyway (defence in depth) and never interpolates user text into
RUN lines.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from mldeploy.contract import (
    APP_ROOT,
    CONTAINER_PORT,
    ENV_APP_ROOT,
    ENV_ENTRY_SCRIPT,
    ENV_MODEL_DIR,
    ENV_PORT,
    MODELS_ROOT,
    READINESS_PATH,
    RUNTIME_ROOT,
    SERVICE_UID,
    SERVICE_USER,
    VENV,
)

ALLOWED_STEP_INSTRUCTIONS = ("RUN", "ENV", "ARG", "LABEL")
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*\Z")  # \Z: '$' would accept a trailing newline
_INSTRUCTION = re.compile(r"^\s*([A-Za-z]+)\b")


@dataclass(frozen=True)
class DockerfileInputs:
    base_image: str
    model_name: str
    model_version: int
    entry_script: str  # file name inside the app folder
    has_requirements: bool
    extra_steps: str = ""  # the user's Dockerfile.steps, already checked


def check_extra_steps(text: str) -> list[tuple[int, str]]:
    """Problems in user Dockerfile steps: only RUN/ENV/ARG/LABEL, no FROM/USER/COPY that would break the image."""
    problems: list[tuple[int, str]] = []
    continued = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if continued:
            if stripped and not stripped.startswith("#"):  # Docker skips these inside a continuation
                continued = stripped.endswith("\\")
            continue
        if not stripped or stripped.startswith("#"):
            continue
        continued = stripped.endswith("\\")
        match = _INSTRUCTION.match(stripped)
        word = match.group(1).upper() if match else stripped.split()[0]
        if word not in ALLOWED_STEP_INSTRUCTIONS:
            problems.append((number, f"instruction {word!r} is not allowed in extra Dockerfile steps"))
    if continued:  # a dangling '\\' would swallow the next rendered instruction (COPY runtime/)
        problems.append((len(text.splitlines()), "the steps end inside a continuation ('\\' with no line after it)"))
    return problems


def _token(value: str, what: str) -> str:
    if not _SAFE_TOKEN.match(value):
        raise ValueError(f"unsafe {what} for a Dockerfile: {value!r}")
    return value


def render_dockerfile(inputs: DockerfileInputs) -> str:
    base = _token(inputs.base_image, "base image")
    model_name = _token(inputs.model_name, "model name")
    script = _token(inputs.entry_script, "entry script")
    step_problems = check_extra_steps(inputs.extra_steps)
    if step_problems:
        line, message = step_problems[0]
        raise ValueError(f"unsafe extra Dockerfile steps: line {line}: {message}")
    model_dir = f"{MODELS_ROOT}/{model_name}/{int(inputs.model_version)}"
    lines = [
        "# syntax=docker/dockerfile:1",
        "# Rendered by mldeploy. Layers run from least to most often changed:",
        "# a change to the scoring script rebuilds only the last layer.",
        f"FROM {base}",
        "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        f"RUN useradd --system --uid {SERVICE_UID} --no-create-home --shell /usr/sbin/nologin {SERVICE_USER}"
        f" && python3 -m venv {VENV}",
        "",
        "# Python environment: wheels resolved on the host, installed offline (hermetic, cacheable).",
        "COPY wheels/ /tmp/wheels/",
        "COPY requirements/ /tmp/requirements/",
        f"RUN {VENV}/bin/pip install --no-index --find-links=/tmp/wheels"
        " -r /tmp/requirements/runtime.txt"
        + (" -r /tmp/requirements/user.txt" if inputs.has_requirements else "")
        + " && rm -rf /tmp/wheels /tmp/requirements",
    ]
    if inputs.extra_steps.strip():
        lines += ["", "# Extra steps from the service's environment.extra_dockerfile_steps", inputs.extra_steps.strip()]
    lines += [
        "",
        "# Scoring runtime (no Prefect, no pipeline code inside the image)",
        f"COPY runtime/ {RUNTIME_ROOT}/",
        "",
        f"# The registered model, where {ENV_MODEL_DIR} points ({model_name} version {int(inputs.model_version)})",
        f"COPY model/ {model_dir}/",
        "",
        "ENV "
        + " ".join(
            [
                f"PATH={VENV}/bin:$PATH",
                f"PYTHONPATH={RUNTIME_ROOT}",
                f"{ENV_APP_ROOT}={APP_ROOT}",
                f"{ENV_MODEL_DIR}={model_dir}",
                f"{ENV_ENTRY_SCRIPT}={script}",
                f"{ENV_PORT}={CONTAINER_PORT}",
            ]
        ),
        f"EXPOSE {CONTAINER_PORT}",
        f"WORKDIR {APP_ROOT}",
        f"USER {SERVICE_UID}",
        "HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 CMD "
        + json.dumps(
            [
                "python3",
                "-c",
                "import urllib.request; "
                f"urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}{READINESS_PATH}', timeout=2)",
            ]
        ),
        'CMD ["python3", "-m", "mldeploy_runtime"]',
        "",
        "# The scoring script and its folder: the layer that changes most",
        f"COPY --chown={SERVICE_UID} app/ {APP_ROOT}/",
        "",
    ]
    return "\n".join(lines)
