"""The scoring image's contract (port, probe paths, variables, paths, labels): one source.

The declarations live in the runtime package (``mldeploy_runtime/contract.py``) because the
runtime ships inside the image without mldeploy; the pipeline reads the same file from here.
"""

from mldeploy.runtime.mldeploy_runtime.contract import (
    APP_ROOT,
    AUTH_FILE_SUFFIX,
    AUTH_KEY_VARS,
    COMPAT_ROOT,
    CONTAINER_PORT,
    ENV_APP_ROOT,
    ENV_DEBUG,
    ENV_ENTRY_SCRIPT,
    ENV_MODEL_DIR,
    ENV_PORT,
    ENV_SOURCE_DIRECTORY,
    INFO_PATH,
    LABEL_ENVIRONMENT_SHA256,
    LABEL_FINGERPRINT,
    LABEL_IMAGE,
    LABEL_IMAGE_FINGERPRINT,
    LABEL_MODEL,
    LABEL_MODEL_SHA256,
    LABEL_ROLE,
    LABEL_SECRETS_DIGEST,
    LABEL_SERVICE,
    LIVENESS_PATH,
    MIN_PYTHON,
    MODELS_DIR,
    MODELS_ROOT,
    READINESS_PATH,
    RUNTIME_ROOT,
    SCORE_PATH,
    SERVICE_UID,
    SERVICE_USER,
    SWAGGER_PATH,
    VENV,
)

__all__ = [
    "APP_ROOT",
    "AUTH_FILE_SUFFIX",
    "AUTH_KEY_VARS",
    "COMPAT_ROOT",
    "CONTAINER_PORT",
    "ENV_APP_ROOT",
    "ENV_DEBUG",
    "ENV_ENTRY_SCRIPT",
    "ENV_MODEL_DIR",
    "ENV_PORT",
    "ENV_SOURCE_DIRECTORY",
    "INFO_PATH",
    "LABEL_ENVIRONMENT_SHA256",
    "LABEL_FINGERPRINT",
    "LABEL_IMAGE",
    "LABEL_IMAGE_FINGERPRINT",
    "LABEL_MODEL",
    "LABEL_MODEL_SHA256",
    "LABEL_ROLE",
    "LABEL_SECRETS_DIGEST",
    "LABEL_SERVICE",
    "LIVENESS_PATH",
    "MIN_PYTHON",
    "MODELS_DIR",
    "MODELS_ROOT",
    "READINESS_PATH",
    "RUNTIME_ROOT",
    "SCORE_PATH",
    "SERVICE_UID",
    "SERVICE_USER",
    "SWAGGER_PATH",
    "VENV",
]


def runtime_supports(python: str) -> bool:
    """Whether the scoring runtime can run on ``python`` (major.minor[.patch])."""
    try:
        return tuple(int(part) for part in python.split(".")[:2]) >= MIN_PYTHON
    except ValueError:
        return False
