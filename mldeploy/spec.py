"""The service spec: YAML in, typed frozen objects out, or every problem at once.

Pure: reads the spec file and checks that referenced files exist, compiles the entry script,
but never touches an engine, registry or cloud. Everything that could reach a Dockerfile or a
shell is checked against a strict pattern here, so the renderers can trust it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mldeploy.errors import SpecError, SpecProblem

TargetKind = Literal["local", "aci", "kubernetes"]
TARGET_KINDS: tuple[str, ...] = ("local", "aci", "kubernetes")

# Anchored with \Z, not $: '$' also matches before a trailing newline.
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}\Z")
SCRIPT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.py\Z")
SCRIPT_FOLDER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")  # folders of a script in source_directory
ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
PYTHON_VERSION = re.compile(r"^3\.\d{1,2}\Z")
# host[:port]/path — what a registry reference may be; no scheme, no whitespace, no shell syntax.
REGISTRY_URL = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*\Z"
)
# A docker image reference: [registry[:port]/]path[:tag][@sha256:...]
IMAGE_REF = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::[0-9]{1,5})?/)?[a-z0-9]+(?:[._/-][a-z0-9]+)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?\Z"
)

KNOWN_KEYS: dict[str, set[str]] = {
    "": {
        "name",
        "description",
        "model",
        "entry_script",
        "source_directory",
        "environment",
        "registry",
        "target",
        "smoke",
        "deploy",
        "secrets",
    },
    "model": {"name", "path", "description"},
    "environment": {"conda_file", "requirements", "python", "base_image", "extra_dockerfile_steps", "variables"},
    "registry": {"url", "username", "password_env", "insecure"},
    "target": {"kind", "port", "cpu_cores", "memory_gb", "namespace", "replicas", "variables"},
    "deploy": {"health_timeout_seconds", "debug"},
    "smoke[]": {"request", "expect_status", "expect", "max_latency_ms", "name"},
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: Path
    description: str = ""


@dataclass(frozen=True)
class EnvironmentSpec:
    conda_file: Path | None = None
    requirements: Path | None = None
    python: str | None = None
    base_image: str | None = None
    extra_dockerfile_steps: Path | None = None


@dataclass(frozen=True)
class RegistrySpec:
    url: str
    username: str | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class TargetSpec:
    kind: TargetKind = "local"
    port: int = 8890
    cpu_cores: float | None = None  # None: the target's default (ACI: 0.1 core; local: no limit)
    memory_gb: float | None = None  # None: the target's default (ACI: 0.5 GB; local: no limit)
    namespace: str = "default"
    replicas: int = 1


@dataclass(frozen=True)
class SmokeCase:
    name: str
    request: Any  # a JSON document (sent as JSON) or a string (sent as is)
    expect_status: int = 200
    expect: Any = None
    has_expect: bool = False
    max_latency_ms: float | None = None

    def body(self) -> bytes:
        import json

        if isinstance(self.request, str):
            return self.request.encode()
        return json.dumps(self.request).encode()


@dataclass(frozen=True)
class ServiceSpec:
    path: Path  # the spec file itself
    name: str
    model: ModelSpec
    entry_script: Path
    environment: EnvironmentSpec
    target: TargetSpec
    registry: RegistrySpec | None = None
    source_directory: Path | None = None
    description: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    # container variable -> host environment variable holding the value (never the value itself)
    secrets: Mapping[str, str] = field(default_factory=dict)
    smoke: tuple[SmokeCase, ...] = ()
    health_timeout_seconds: float = 60.0
    debug: bool = False

    @property
    def root(self) -> Path:
        return self.path.parent

    def with_target(self, kind: str) -> ServiceSpec:
        from dataclasses import replace

        if kind not in TARGET_KINDS:
            raise SpecError(
                str(self.path),
                [
                    SpecProblem(
                        str(self.path),
                        "target.kind",
                        f"unknown target {kind!r} (from --target)",
                        f"use one of {', '.join(TARGET_KINDS)}",
                    )
                ],
            )
        return replace(self, target=replace(self.target, kind=kind))  # type: ignore[arg-type]


class _Collector:
    """Collects problems for one spec file so validation can report all of them at once."""

    def __init__(self, file: Path) -> None:
        self.file = str(file)
        self.problems: list[SpecProblem] = []

    def add(self, field_path: str, message: str, fix: str) -> None:
        self.problems.append(SpecProblem(self.file, field_path, message, fix))


def load_spec(path: str | Path, *, target_override: str | None = None) -> ServiceSpec:
    """Read and validate a service spec; raise :class:`SpecError` listing every problem."""
    spec_path = Path(path).resolve()
    problems = _Collector(spec_path)
    if not spec_path.is_file():
        problems.add("(file)", "the spec file does not exist", "pass the path of a service.yaml")
        raise SpecError(str(spec_path), problems.problems)
    try:
        raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        problems.add(where, f"not valid YAML: {getattr(exc, 'problem', exc)}", "fix the YAML syntax")
        raise SpecError(str(spec_path), problems.problems) from None
    except UnicodeDecodeError:
        problems.add("(file)", "not UTF-8 text", "save the spec as UTF-8")
        raise SpecError(str(spec_path), problems.problems) from None
    if not isinstance(raw, dict):
        problems.add("(document)", "the spec must be a mapping of keys", "start with 'name: my-service'")
        raise SpecError(str(spec_path), problems.problems)
    if target_override is not None:
        if raw.get("target") is None:  # absent, or an empty 'target:' line
            raw["target"] = {}
        if isinstance(raw["target"], dict):
            raw["target"] = {**raw["target"], "kind": target_override}
    spec = _parse(raw, spec_path, problems)
    if problems.problems or spec is None:
        raise SpecError(str(spec_path), problems.problems)
    return spec


def _unknown_keys(section: Mapping[str, Any], known_key: str, prefix: str, c: _Collector) -> None:
    for key in section:
        if key not in KNOWN_KEYS[known_key]:
            known = ", ".join(sorted(KNOWN_KEYS[known_key]))
            c.add(f"{prefix}{key}", "unknown key", f"remove it or use one of: {known}")


def _section(raw: Mapping[str, Any], key: str, c: _Collector, required: bool) -> dict[str, Any] | None:
    value = raw.get(key)
    if value is None:
        if required:
            c.add(key, "missing section", f"add a '{key}:' mapping (see deployments/examples)")
        return None
    if not isinstance(value, dict):
        c.add(key, f"must be a mapping, got {type(value).__name__}", f"write '{key}:' with keys below it")
        return None
    _unknown_keys(value, key, f"{key}.", c)
    return value


def _string(
    section: Mapping[str, Any],
    key: str,
    where: str,
    c: _Collector,
    *,
    required: bool,
    pattern: re.Pattern[str] | None = None,
    rule: str = "",
) -> str | None:
    value = section.get(key)
    if value is None:
        if required:
            c.add(where, "missing", f"set {where}")
        return None
    if not isinstance(value, str) or not value.strip():
        c.add(where, f"must be a non-empty string, got {value!r}", f"set {where} to text")
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        c.add(where, f"{value!r} contains a control character (newline, tab, NUL...)", "remove it")
        return None
    if pattern is not None and not pattern.match(value):
        c.add(where, f"{value!r} is not allowed", rule)
        return None
    return value


def _number(
    section: Mapping[str, Any],
    key: str,
    where: str,
    c: _Collector,
    default: float,
    *,
    low: float,
    high: float,
    integer: bool = False,
) -> float:
    value = section.get(key, default)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        c.add(
            where,
            f"must be a {'whole ' if integer else ''}number, got {value!r}",
            f"set {where} to a number between {low:g} and {high:g}",
        )
        return default
    if not low <= value <= high:
        c.add(where, f"{value!r} is out of range", f"use a value between {low:g} and {high:g}")
        return default
    return float(value)


def _file(root: Path, value: str | None, where: str, c: _Collector, *, kind: str = "file") -> Path | None:
    if value is None:
        return None
    path = (root / value).resolve()
    if kind == "file" and not path.is_file():
        hint = "it is a folder; name a file" if path.is_dir() else f"create it or fix the path (looked at {path})"
        c.add(where, f"file {value!r} not found", hint)
        return None
    if kind == "dir" and not path.is_dir():
        c.add(where, f"folder {value!r} not found", f"create it or fix the path (looked at {path})")
        return None
    if kind == "any" and not path.exists():
        c.add(where, f"{value!r} not found", f"the model file or folder must exist (looked at {path})")
        return None
    return path


def _variables(value: Any, where: str, c: _Collector) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        c.add(where, "must be a mapping of NAME: value", f"write {where} as 'NAME: value' lines")
        return {}
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not ENV_VAR_NAME.match(key):
            c.add(f"{where}.{key}", "not a valid environment variable name", "use letters, digits and _")
        elif isinstance(item, bool) or not isinstance(item, str | int | float):
            c.add(f"{where}.{key}", f"must be a string or number, got {type(item).__name__}", "quote the value")
        elif "\x00" in str(item):
            c.add(f"{where}.{key}", "contains a NUL byte", "remove it")
        else:
            result[key] = str(item)
    return result


def _secrets(value: Any, c: _Collector) -> dict[str, str]:
    """``secrets: {CONTAINER_VAR: HOST_ENV_VAR}``: values come from the deploying machine's environment."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        c.add("secrets", "must be a mapping of CONTAINER_VAR: HOST_ENV_VAR", "write e.g. 'API_KEY: MY_API_KEY'")
        return {}
    result: dict[str, str] = {}
    for key, source in value.items():
        if not isinstance(key, str) or not ENV_VAR_NAME.fullmatch(key):
            c.add(f"secrets.{key}", "not a valid environment variable name", "use letters, digits and _")
        elif not isinstance(source, str) or not ENV_VAR_NAME.fullmatch(source):
            c.add(
                f"secrets.{key}",
                f"{source!r} is not the name of an environment variable",
                "name the variable that holds the value on the deploying machine, never the value itself",
            )
        else:
            result[key] = source
    return result


@dataclass(frozen=True)
class ResolvedSecrets:
    """Secret values read from the deploying machine's environment (never from the spec)."""

    container: Mapping[str, str]  # container variable -> value
    registry_password: str | None

    def values(self) -> list[str]:
        return [*self.container.values(), *([self.registry_password] if self.registry_password else [])]


def resolve_secrets(spec: ServiceSpec, environ: Mapping[str, str]) -> ResolvedSecrets:
    """Resolve ``secrets`` and the registry password from the environment; every missing one is a problem."""
    problems: list[SpecProblem] = []

    def read(where: str, source: str) -> str:
        if not environ.get(source):
            problems.append(
                SpecProblem(
                    str(spec.path),
                    where,
                    f"environment variable {source} is not set",
                    f"export {source}=<value> on the machine that deploys",
                )
            )
        return environ.get(source, "")

    container = {name: read(f"secrets.{name}", source) for name, source in spec.secrets.items()}
    password = None
    if spec.registry is not None and spec.registry.password_env:
        password = read("registry.password_env", spec.registry.password_env)
    if problems:
        raise SpecError(str(spec.path), problems)
    return ResolvedSecrets(container, password or None)


def _check_entry_script(path: Path, where: str, c: _Collector) -> None:
    """Compile the scoring script and check that it defines init() and run()."""
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        c.add(
            where,
            f"{path.name} does not compile: {exc.msg} at line {exc.lineno}",
            "fix the syntax error in the scoring script",
        )
        return
    except UnicodeDecodeError:
        c.add(where, f"{path.name} is not UTF-8 text", "save the scoring script as UTF-8")
        return
    except ValueError as exc:  # Python 3.11: "source code string cannot contain null bytes"
        c.add(where, f"{path.name} does not compile: {exc}", "remove the NUL bytes from the scoring script")
        return
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    for required in ("init", "run"):
        if required not in defined:
            c.add(
                where,
                f"{path.name} defines no top-level {required}()",
                f"add 'def {required}(...)' (see the scoring contract in README)",
            )


def _smoke(raw: Any, c: _Collector) -> tuple[SmokeCase, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        c.add("smoke", "must be a list of requests", "write '- request: {...}' items under smoke:")
        return ()
    cases: list[SmokeCase] = []
    for index, item in enumerate(raw):
        where = f"smoke[{index}]"
        if not isinstance(item, dict):
            c.add(where, "must be a mapping with 'request'", "write '- request: ...' and 'expect_status: 200'")
            continue
        _unknown_keys(item, "smoke[]", f"{where}.", c)
        if "request" not in item:
            c.add(f"{where}.request", "missing", "add the request body (JSON or a string)")
            continue
        status = item.get("expect_status", 200)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            c.add(f"{where}.expect_status", f"{status!r} is not an HTTP status", "use e.g. 200")
            status = 200
        latency = item.get("max_latency_ms")
        if latency is not None and (isinstance(latency, bool) or not isinstance(latency, int | float) or latency <= 0):
            c.add(f"{where}.max_latency_ms", f"{latency!r} is not a positive number", "use e.g. 500")
            latency = None
        name = item.get("name", f"request {index + 1}")
        cases.append(
            SmokeCase(
                name=str(name),
                request=item["request"],
                expect_status=status,
                expect=item.get("expect"),
                has_expect="expect" in item,
                max_latency_ms=float(latency) if latency is not None else None,
            )
        )
    return tuple(cases)


def _parse(raw: dict[str, Any], spec_path: Path, c: _Collector) -> ServiceSpec | None:
    root = spec_path.parent
    _unknown_keys(raw, "", "", c)
    name = _string(
        raw,
        "name",
        "name",
        c,
        required=True,
        pattern=DNS1123_LABEL,
        rule="use a DNS-1123 label: lowercase letters, digits and '-', start and end alphanumeric",
    )
    if name is not None and len(name) > 63:
        c.add("name", f"{len(name)} characters is too long", "use at most 63 characters")

    model_raw = _section(raw, "model", c, required=True) or {}
    model_name = _string(
        model_raw,
        "name",
        "model.name",
        c,
        required=True,
        pattern=MODEL_NAME,
        rule="use letters, digits, '.', '_' and '-' (at most 255), starting alphanumeric",
    )
    model_path = _file(root, _string(model_raw, "path", "model.path", c, required=True), "model.path", c, kind="any")

    script_value = _string(raw, "entry_script", "entry_script", c, required=True)
    source_dir = _file(
        root, _string(raw, "source_directory", "source_directory", c, required=False), "source_directory", c, kind="dir"
    )
    entry_script = _file(source_dir or root, script_value, "entry_script", c)
    if entry_script is not None:
        if not SCRIPT_NAME.match(entry_script.name):
            c.add(
                "entry_script",
                f"{entry_script.name!r} is not a plain Python file name",
                "name the script like score.py (letters, digits, '_', '.', '-')",
            )
        elif source_dir is not None and not entry_script.is_relative_to(source_dir):
            c.add("entry_script", "must be inside source_directory", "move the script into source_directory")
        elif source_dir is not None and not all(
            SCRIPT_FOLDER.match(part) for part in entry_script.relative_to(source_dir).parts[:-1]
        ):
            # this relative path reaches the Dockerfile (AZUREML_ENTRY_SCRIPT)
            relative = entry_script.relative_to(source_dir).as_posix()
            c.add(
                "entry_script",
                f"{relative!r} has an unsafe folder name",
                "use folder names of letters, digits, '_', '.', '-'",
            )
        else:
            _check_entry_script(entry_script, "entry_script", c)

    env_raw = _section(raw, "environment", c, required=True) or {}
    conda = _file(
        root, _string(env_raw, "conda_file", "environment.conda_file", c, required=False), "environment.conda_file", c
    )
    reqs = _file(
        root,
        _string(env_raw, "requirements", "environment.requirements", c, required=False),
        "environment.requirements",
        c,
    )
    names_env = "conda_file" in env_raw or "requirements" in env_raw
    if isinstance(raw.get("environment"), dict) and not names_env:
        c.add(
            "environment",
            "names no Python environment",
            "set environment.conda_file (conda YAML with a pip: section) or environment.requirements",
        )
    if conda is not None or reqs is not None:
        from mldeploy.environment import load_environment

        try:
            load_environment(conda, None if conda else reqs)
        except SpecError as exc:  # problems inside the environment file, named by that file
            c.problems.extend(exc.problems)
    if "conda_file" in env_raw and "requirements" in env_raw:
        c.add("environment", "sets both conda_file and requirements", "keep one of the two")
    python = env_raw.get("python")
    if python is not None and not isinstance(python, str):
        # YAML reads an unquoted 3.10 as the number 3.1: never guess which was meant.
        c.add(
            "environment.python",
            f"{python!r} is not a quoted version string",
            "quote it, e.g. python: '3.11' (unquoted, 3.10 reads as 3.1)",
        )
        python = None
    if python is not None and not PYTHON_VERSION.match(python):
        c.add("environment.python", f"{python!r} is not a Python version", "use major.minor, e.g. '3.11'")
        python = None
    base_image = _string(
        env_raw,
        "base_image",
        "environment.base_image",
        c,
        required=False,
        pattern=IMAGE_REF,
        rule="use an image reference like python:3.11-slim or registry/repo:tag",
    )
    steps = _file(
        root,
        _string(env_raw, "extra_dockerfile_steps", "environment.extra_dockerfile_steps", c, required=False),
        "environment.extra_dockerfile_steps",
        c,
    )
    if steps is not None:
        from mldeploy.dockerfile import check_extra_steps

        for line_no, message in check_extra_steps(steps.read_text(encoding="utf-8", errors="replace")):
            c.add(
                f"environment.extra_dockerfile_steps (line {line_no})",
                message,
                "allowed instructions: RUN, ENV, ARG, LABEL",
            )
    env_vars = _variables(env_raw.get("variables"), "environment.variables", c)

    registry: RegistrySpec | None = None
    reg_raw = _section(raw, "registry", c, required=False)
    if reg_raw is not None:
        url = _string(
            reg_raw,
            "url",
            "registry.url",
            c,
            required=True,
            pattern=REGISTRY_URL,
            rule="use host[:port][/path] without a scheme, e.g. 127.0.0.1:5000 or myacr.azurecr.io",
        )
        username = _string(reg_raw, "username", "registry.username", c, required=False)
        password_env = _string(
            reg_raw,
            "password_env",
            "registry.password_env",
            c,
            required=False,
            pattern=ENV_VAR_NAME,
            rule="name the environment variable that holds the password",
        )
        if url is not None:
            registry = RegistrySpec(url=url, username=username, password_env=password_env)

    target_raw = _section(raw, "target", c, required=False) or {}
    kind = target_raw.get("kind", "local")
    if kind not in TARGET_KINDS:
        c.add("target.kind", f"unknown target {kind!r}", f"use one of {', '.join(TARGET_KINDS)}")
        kind = "local"
    port = int(_number(target_raw, "port", "target.port", c, 8890, low=1024, high=65535, integer=True))
    target = TargetSpec(
        kind=kind,
        port=port,
        cpu_cores=_number(target_raw, "cpu_cores", "target.cpu_cores", c, 0.1, low=0.05, high=64)
        if "cpu_cores" in target_raw
        else None,
        memory_gb=_number(target_raw, "memory_gb", "target.memory_gb", c, 0.5, low=0.01, high=256)
        if "memory_gb" in target_raw
        else None,
        namespace=_string(
            target_raw,
            "namespace",
            "target.namespace",
            c,
            required=False,
            pattern=DNS1123_LABEL,
            rule="use a DNS-1123 label",
        )
        or "default",
        replicas=int(_number(target_raw, "replicas", "target.replicas", c, 1, low=1, high=100, integer=True)),
    )
    target_vars = _variables(target_raw.get("variables"), "target.variables", c)
    if kind != "local" and registry is None:
        c.add(
            "registry.url",
            f"target {kind!r} pulls the image from a registry, but none is set",
            "add 'registry: {url: <your registry>}'",
        )

    deploy_raw = _section(raw, "deploy", c, required=False) or {}
    health_timeout = _number(
        deploy_raw, "health_timeout_seconds", "deploy.health_timeout_seconds", c, 60.0, low=1, high=3600
    )
    debug = deploy_raw.get("debug", False)
    if not isinstance(debug, bool):
        c.add("deploy.debug", f"must be true or false, got {debug!r}", "write debug: true or remove it")
        debug = False

    smoke = _smoke(raw.get("smoke"), c)
    description = raw.get("description", "")
    secrets = _secrets(raw.get("secrets"), c)
    for clash in sorted(set(secrets) & set(env_vars) | set(secrets) & set(target_vars)):
        c.add(f"secrets.{clash}", "is also set as a plain variable", "keep it in one place (secrets for secret values)")

    if c.problems or name is None or model_name is None or model_path is None or entry_script is None:
        return None
    return ServiceSpec(
        path=spec_path,
        name=name,
        description=str(description or ""),
        model=ModelSpec(name=model_name, path=model_path, description=str(model_raw.get("description", ""))),
        entry_script=entry_script,
        source_directory=source_dir,
        environment=EnvironmentSpec(
            conda_file=conda, requirements=reqs, python=python, base_image=base_image, extra_dockerfile_steps=steps
        ),
        registry=registry,
        target=target,
        variables={**env_vars, **target_vars},
        secrets=secrets,
        smoke=smoke,
        health_timeout_seconds=health_timeout,
        debug=debug,
    )


def service_name_of(spec_path: str | Path) -> str:
    """The service name a spec declares, for labels before validation (its folder's name otherwise)."""
    path = Path(spec_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = raw.get("name") if isinstance(raw, dict) else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        name = None
    if isinstance(name, str) and DNS1123_LABEL.match(name):
        return name
    return path.resolve().parent.name


def problems_of(path: str | Path) -> list[SpecProblem]:
    """Every problem of a spec file (empty when it is valid); for `mldeploy validate`."""
    try:
        load_spec(path)
    except SpecError as exc:
        return exc.problems
    return []
