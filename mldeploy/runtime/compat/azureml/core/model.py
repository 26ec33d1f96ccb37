"""Compatibility shim for ``azureml.core.model.Model`` inside a deployed scoring service.

Only ``Model.get_model_path(model_name, version=None, _workspace=None)`` is provided. It resolves a deployed
model the way azureml-core 1.x did in a service container (``_get_model_path_local``): the images mldeploy
builds have the classic layout, ``/var/azureml-app/azureml-models/<name>/<version>/<file or folder>``, with
the working directory at ``/var/azureml-app`` and ``AZUREML_MODEL_DIR`` naming the one model's version folder
(or ``azureml-models`` itself when the service has several). In order:

1. ``azureml-models/<model_name>/<version, or the latest>/`` and its single entry, looked for in the working
   directory (the classic rule) and where ``AZUREML_MODEL_DIR`` says the models are;
2. ``$AZUREML_MODEL_DIR/<model_name>`` — a lenient extension: the file name of the one model asked for
   directly (a difference from the classic server, listed in the runtime README);
3. ``./<model_name>`` in the working directory (the classic last resort).

Otherwise ``ModelNotFoundException`` (the classic error) names every place it looked and what
``AZUREML_MODEL_DIR`` contains. No workspace access: ``_workspace`` is accepted and ignored.
"""

from __future__ import annotations

import os

MODELS_DIR = "azureml-models"
_LISTING_LIMIT = 50


class WebserviceException(Exception):
    """Same name as the classic SDK's exception, for scripts that catch it."""

    def __init__(self, message: str, *args: object, **kwargs: object) -> None:
        super().__init__(message)
        self.message = message


class ModelNotFoundException(WebserviceException):
    """The model is not where a deployed service would have it."""


def _contents(folder: str) -> str:
    if not os.path.isdir(folder):
        return f"{folder} does not exist"
    found: list[str] = []
    more = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            if len(found) < _LISTING_LIMIT:
                found.append(os.path.relpath(os.path.join(dirpath, name), folder))
            else:
                more += 1
    if not found:
        return f"{folder} is empty"
    text = f"{folder} contains: " + ", ".join(found)
    return text + (f" (and {more} more)" if more else "")


def _latest_version(folder: str) -> str | None:
    versions = []
    for entry in os.listdir(folder):
        if entry.isdigit() and os.path.isdir(os.path.join(folder, entry)):
            versions.append(int(entry))
    return str(max(versions)) if versions else None


def _is_version_folder_set(path: str) -> bool:
    """True for a classic ``<name>/`` folder that holds only numeric version folders (``1/``, ``2/``...)."""
    if not os.path.isdir(path):
        return False
    entries = [e for e in os.listdir(path) if not e.startswith(".")]
    return bool(entries) and all(e.isdigit() and os.path.isdir(os.path.join(path, e)) for e in entries)


def _from_version_dir(version_dir: str) -> str:
    entries = sorted(os.listdir(version_dir))
    if len(entries) != 1:
        raise WebserviceException(f"Dir {version_dir} can contain only 1 file or folder. Found {entries}")
    return os.path.join(version_dir, entries[0])


class Model:
    """Stand-in for ``azureml.core.model.Model``; only the static ``get_model_path`` is available."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise WebserviceException(
            "azureml.core.model.Model is only a compatibility shim in an mldeploy service: use "
            "Model.get_model_path(name) or os.environ['AZUREML_MODEL_DIR'] to find the deployed model."
        )

    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace: object = None) -> str:
        """Return the path of the deployed model ``model_name`` (a file or a folder)."""
        if not model_name:
            raise WebserviceException("model_name is None")
        if version is not None and not isinstance(version, int):
            raise WebserviceException("version should be an int")
        tried: list[str] = []
        raw_dir = os.environ.get("AZUREML_MODEL_DIR") or ""
        model_dir = os.path.normpath(raw_dir) if raw_dir else ""

        # 1. the classic cache: azureml-models/<name>/<version>/<single entry>
        for root in dict.fromkeys(_model_roots(model_dir)):
            name_dir = os.path.join(root, model_name)
            if not os.path.isdir(name_dir):
                tried.append(name_dir)
                continue
            ver = str(version) if version is not None else _latest_version(name_dir)
            version_dir = os.path.join(name_dir, ver or "<version>")
            if ver is not None and os.path.isdir(version_dir):
                return _from_version_dir(version_dir)
            tried.append(version_dir)

        # 2. the one model's file or folder, asked for by its own name
        if model_dir and os.path.isdir(model_dir) and version is None:
            candidate = os.path.join(model_dir, model_name)
            if os.path.exists(candidate) and not _is_version_folder_set(candidate):
                return candidate
            tried.append(candidate)

        # 3. ./<model_name>
        if os.path.exists(model_name):
            return model_name
        tried.append(os.path.abspath(model_name))

        where = _contents(model_dir) if model_dir else "AZUREML_MODEL_DIR is not set"
        raise ModelNotFoundException(
            f"Model {model_name!r}"
            + (f" version {version}" if version is not None else "")
            + f" not found in cache or in root. Looked at: {', '.join(tried)}."
            + f" AZUREML_MODEL_DIR={model_dir or '(unset)'}; {where}."
        )


def _model_roots(model_dir: str) -> list[str]:
    """Folders that may hold ``<name>/<version>/``: the working directory's azureml-models (classic) and the
    one ``AZUREML_MODEL_DIR`` points into (its version folder's grandparent, or itself)."""
    roots = [os.path.abspath(MODELS_DIR), os.path.join(os.environ.get("AML_APP_ROOT") or ".", MODELS_DIR)]
    if model_dir:
        parts = model_dir.split(os.sep)
        if len(parts) >= 3 and parts[-3] == MODELS_DIR and parts[-1].isdigit():
            roots.append(os.sep.join(parts[:-2]))
        roots.append(model_dir)
    return roots
