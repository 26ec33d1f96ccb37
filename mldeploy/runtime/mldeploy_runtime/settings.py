"""Settings of the scoring runtime, read once from the environment.

See the package docstring (``mldeploy_runtime/__init__.py``) for the list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import contract

DEFAULT_APP_ROOT = contract.APP_ROOT
DEFAULT_ENTRY_SCRIPT = "score.py"
DEFAULT_PORT = contract.CONTAINER_PORT
DEFAULT_HOST = "0.0.0.0"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 64
DEFAULT_SCORING_TIMEOUT_MS = 3600 * 1000  # same default as azureml-inference-server-http
MIN_KEY_LENGTH = 16

# key auth: the value itself, or a file holding it (a mounted Kubernetes secret; re-read when it changes)
AUTH_KEY_VARS = contract.AUTH_KEY_VARS

_TRUE = {"1", "true", "yes", "on"}


class SettingsError(ValueError):
    """An environment variable has a value the runtime cannot use."""


def _flag(env: dict[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in _TRUE


def _int(env: dict[str, str], name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}={value} must be at most {maximum}")
    return value


_LOG_LEVELS = {"critical", "error", "warning", "info", "debug", "trace"}


def _log_level(env: dict[str, str]) -> str:
    raw = (env.get("AZUREML_LOG_LEVEL") or "info").strip().lower()
    level = {"warn": "warning", "fatal": "critical"}.get(raw, raw)
    if level not in _LOG_LEVELS:
        raise SettingsError(f"AZUREML_LOG_LEVEL={raw!r} is not one of {', '.join(sorted(_LOG_LEVELS))}")
    return level


def _under(app_root: str, path: str | None) -> str | None:
    """A path the image gives relative to the app folder (the working directory), made absolute."""
    if not path:
        return None
    return path if os.path.isabs(path) else os.path.join(app_root, path)


@dataclass(frozen=True)
class AuthSource:
    """Where one key comes from: the environment value, or a file (``<VAR>_FILE``) re-read when it changes."""

    name: str
    value: str | None = None
    file: str | None = None

    def __repr__(self) -> str:  # never the key itself
        where = f"file {self.file}" if self.file else "environment"
        return f"AuthSource({self.name}, {where})"


def _auth_sources(env: dict[str, str]) -> tuple[AuthSource, ...]:
    sources = []
    for var in AUTH_KEY_VARS:
        value = (env.get(var) or "").strip()
        path = (env.get(f"{var}{contract.AUTH_FILE_SUFFIX}") or "").strip()
        if value and path:
            raise SettingsError(f"set either {var} or {var}_FILE, not both")
        if value:
            if len(value) < MIN_KEY_LENGTH:
                raise SettingsError(f"{var} is shorter than {MIN_KEY_LENGTH} characters; use a random key")
            sources.append(AuthSource(var, value=value))
        elif path:
            if not os.path.isfile(path):
                raise SettingsError(f"{var}_FILE={path} is not a readable file")
            sources.append(AuthSource(var, file=path))
    return tuple(sources)


@dataclass(frozen=True)
class Settings:
    app_root: str
    entry_script: str
    entry_script_path: str
    source_dir: str | None
    model_dir: str | None
    host: str
    port: int
    workers: int
    scoring_timeout_ms: int
    max_body_bytes: int
    max_json_depth: int
    debug: bool
    access_log: bool
    log_level: str
    service_name: str
    service_version: str
    service_path_prefix: str
    debug_port: int | None
    debug_wait: bool
    debug_wait_seconds: int = 60
    auth: tuple[AuthSource, ...] = ()
    cors_origins: tuple[str, ...] = ()
    reuse_port: bool = False
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    header_timeout_seconds: int = 10
    body_timeout_seconds: int = 60

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        app_root = env.get(contract.ENV_APP_ROOT) or DEFAULT_APP_ROOT
        entry_script = env.get(contract.ENV_ENTRY_SCRIPT) or DEFAULT_ENTRY_SCRIPT
        entry_script_path = entry_script if os.path.isabs(entry_script) else os.path.join(app_root, entry_script)
        source_dir = env.get("AZUREML_SOURCE_DIRECTORY") or None
        if source_dir and not os.path.isabs(source_dir):
            source_dir = os.path.join(app_root, source_dir)
        port_var = contract.ENV_PORT if env.get(contract.ENV_PORT) else "SERVER_PORT"
        debug_port_raw = env.get("AZUREML_DEBUG_PORT")
        cors = tuple(o.strip() for o in (env.get("AML_CORS_ORIGINS") or "").split(",") if o.strip())
        return cls(
            app_root=app_root,
            entry_script=entry_script,
            entry_script_path=os.path.normpath(entry_script_path),
            source_dir=source_dir,
            model_dir=_under(app_root, env.get(contract.ENV_MODEL_DIR)),
            host=env.get("MLDEPLOY_HOST") or DEFAULT_HOST,
            port=_int(env, port_var, DEFAULT_PORT, 1, 65535),
            workers=_int(env, "WORKER_COUNT", 1, 1, 64),
            scoring_timeout_ms=_int(env, "SCORING_TIMEOUT_MS", DEFAULT_SCORING_TIMEOUT_MS, 0),
            max_body_bytes=_int(env, "MLDEPLOY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 0),
            max_json_depth=_int(env, "MLDEPLOY_MAX_JSON_DEPTH", DEFAULT_MAX_JSON_DEPTH, 0),
            debug=_flag(env, contract.ENV_DEBUG),
            access_log=_flag(env, "MLDEPLOY_ACCESS_LOG"),
            log_level=_log_level(env),
            service_name=env.get("SERVICE_NAME") or "ML service",
            service_version=env.get("SERVICE_VERSION") or "1.0",
            service_path_prefix=env.get("SERVICE_PATH_PREFIX") or "",
            debug_port=_int(env, "AZUREML_DEBUG_PORT", 0, 1, 65535) if debug_port_raw else None,
            debug_wait=_flag(env, "MLDEPLOY_DEBUG_WAIT"),
            debug_wait_seconds=_int(env, "MLDEPLOY_DEBUG_WAIT_SECONDS", 60, 0, 3600),
            auth=_auth_sources(env),
            cors_origins=cors,
            reuse_port=_flag(env, "MLDEPLOY_REUSE_PORT"),
            max_header_bytes=_int(env, "MLDEPLOY_MAX_HEADER_BYTES", 64 * 1024, 1024, 1024 * 1024),
            max_headers=_int(env, "MLDEPLOY_MAX_HEADERS", 100, 10, 1000),
            header_timeout_seconds=_int(env, "MLDEPLOY_HEADER_TIMEOUT_SECONDS", 10, 1, 3600),
            body_timeout_seconds=_int(env, "MLDEPLOY_BODY_TIMEOUT_SECONDS", 60, 1, 3600),
        )
