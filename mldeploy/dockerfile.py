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
    COMPAT_ROOT,
    CONTAINER_PORT,
    ENV_APP_ROOT,
    ENV_ENTRY_SCRIPT,
    ENV_MODEL_DIR,
    ENV_PORT,
    ENV_SOURCE_DIRECTORY,
    LABEL_SERVICE,
    MODELS_DIR,
    MODELS_ROOT,
    READINESS_PATH,
    RUNTIME_ROOT,
    SERVICE_UID,
    SERVICE_USER,
    VENV,
)

ALLOWED_STEP_INSTRUCTIONS = ("RUN", "ENV", "ARG", "LABEL")
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*\Z")  # \Z: '$' would accept a trailing newline


@dataclass(frozen=True)
class DockerfileInputs:
    base_image: str
    models: tuple[tuple[str, int], ...]  # (registered name, version) of each model, in the spec's order
    entry_script: str  # path inside the app folder: score.py, or <source dir>/<path of the script in it>
    has_requirements: bool
    extra_steps: str = ""  # the user's Dockerfile.steps, already checked
    service: str = ""  # labels every layer, so what a killed build leaves is found and removed
    source_directory: str = ""  # its name: the folder under the app folder (AZUREML_SOURCE_DIRECTORY)


# Only printable ASCII, tab and newline: no character that Docker's parser (Go's unicode.IsSpace,
# bufio's line splitting) could read differently from this check (form feed, NEL, U+2028, CR...).
_STEP_CHARACTERS = re.compile(r"[\t\n\x20-\x7e]*")
_CONTINUATION = re.compile(r"\\[ \t]*\Z")  # Docker's lineContinuationRegex for the default escape token


def parse_steps(text: str) -> tuple[list[tuple[int, str]], bool]:
    """The instructions Docker's Dockerfile parser reads from ``text`` — (first line number, joined
    line) each — and whether the text ends inside a continuation (it would swallow the next line).

    Mirrors the parser of moby/buildkit (``frontend/dockerfile/parser``) for printable ASCII: a line
    is left-trimmed, a line starting with '#' is a comment, a trailing backslash (then only spaces and
    tabs) continues the instruction on the next line, and inside a continuation comment lines and blank
    lines are skipped. ``tests/integration/test_hostile_inputs.py`` checks it against the engine's parser.
    """
    lines = text.split("\n")
    found: list[tuple[int, str]] = []
    index = 0
    while index < len(lines):
        start = index + 1
        line = lines[index].lstrip(" \t")
        index += 1
        if line.startswith("#"):
            line = ""
        match = _CONTINUATION.search(line)
        if match:
            line = line[: match.start()]
        elif not line:
            continue
        while match and index < len(lines):
            raw = lines[index]
            index += 1
            if raw.lstrip(" \t").startswith("#") or not raw.strip(" \t"):
                continue
            match = _CONTINUATION.search(raw)
            line += raw[: match.start()] if match else raw
        found.append((start, line))
        if match:  # the text ends inside a continuation
            return found, True
    return found, False


def check_extra_steps(text: str) -> list[tuple[int, str]]:
    """Problems in user Dockerfile steps: only RUN/ENV/ARG/LABEL, read exactly as Docker reads them."""
    problems: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        bad = _STEP_CHARACTERS.sub("", line)
        if bad:
            problems.append(
                (number, f"character {bad[0]!r} is not allowed (printable ASCII and tabs only; save with LF endings)")
            )
    if problems:
        return problems  # the lines cannot be read safely: do not guess where instructions start
    if "<<" in text:
        first = next(number for number, line in enumerate(text.split("\n"), start=1) if "<<" in line)
        problems.append((first, "heredocs ('<<') are not allowed: write the command on RUN lines"))
    instructions, dangling = parse_steps(text)
    for number, instruction in instructions:
        word = instruction.split(None, 1)[0].upper() if instruction.split() else ""
        if word not in ALLOWED_STEP_INSTRUCTIONS:
            problems.append((number, f"instruction {word!r} is not allowed in extra Dockerfile steps"))
    if dangling:  # a dangling '\' would swallow the next rendered instruction (COPY runtime/)
        problems.append((len(text.split("\n")), "the steps end inside a continuation ('\\' with no line after it)"))
    return problems


def _token(value: str, what: str) -> str:
    if not _SAFE_TOKEN.match(value):
        raise ValueError(f"unsafe {what} for a Dockerfile: {value!r}")
    return value


def render_dockerfile(inputs: DockerfileInputs) -> str:
    base = _token(inputs.base_image, "base image")
    if not inputs.models:
        raise ValueError("a service ships at least one model")
    models = [(_token(name, "model name"), int(version)) for name, version in inputs.models]
    script = _token(inputs.entry_script, "entry script")
    step_problems = check_extra_steps(inputs.extra_steps)
    if step_problems:
        line, message = step_problems[0]
        raise ValueError(f"unsafe extra Dockerfile steps: line {line}: {message}")
    # The classic layout: one model's folder is AZUREML_MODEL_DIR; several share azureml-models/ (each a folder).
    # Relative to the working directory, as in the classic service (scripts split it: .split('/')[1] is the name).
    model_dir = f"{MODELS_DIR}/{models[0][0]}/{models[0][1]}" if len(models) == 1 else MODELS_DIR
    lines = [
        "# syntax=docker/dockerfile:1",
        "# Rendered by mldeploy. Layers run from least to most often changed:",
        "# a change to the scoring script rebuilds only the last layer.",
        f"FROM {base}",
        *([f"LABEL {LABEL_SERVICE}={_token(inputs.service, 'service name')}"] if inputs.service else []),
        "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        f"RUN useradd --system --uid {SERVICE_UID} --no-create-home --shell /usr/sbin/nologin {SERVICE_USER}"
        f" && python3 -m venv {VENV}"
        # the azureml compatibility shim goes last on sys.path: a real azureml-* package the user installs wins
        f""" && {VENV}/bin/python -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"],"""
        f""" "mldeploy-compat.pth").write_text("{COMPAT_ROOT}\\n")'""",
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
        f"# The registered model(s); {ENV_MODEL_DIR} is {model_dir}",
        *[f"COPY model/{name}/{version}/ {MODELS_ROOT}/{name}/{version}/" for name, version in models],
        "",
        "ENV "
        + " ".join(
            [
                f"PATH={VENV}/bin:$PATH",
                f"PYTHONPATH={RUNTIME_ROOT}",
                f"{ENV_APP_ROOT}={APP_ROOT}",
                f"{ENV_MODEL_DIR}={model_dir}",
                f"{ENV_ENTRY_SCRIPT}={script}",
                *(
                    [f"{ENV_SOURCE_DIRECTORY}={_token(inputs.source_directory, 'source directory')}"]
                    if inputs.source_directory
                    else []
                ),
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
        "# The scoring script, or its source directory as a folder of its own: the layer that changes most",
        f"COPY --chown={SERVICE_UID} app/ {APP_ROOT}/",
        "",
    ]
    return "\n".join(lines)
