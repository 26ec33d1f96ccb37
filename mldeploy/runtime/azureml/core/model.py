"""Compatibility shim for ``azureml.core.model.Model`` inside a deployed scoring service.

Only ``Model.get_model_path(model_name, version=None, _workspace=None)`` is provided: it resolves the local
path
of a deployed model the way azureml-core 1.x did in a service container (``_get_model_path_local``), extended
with mldeploy's layout:

1. mldeploy layout: ``$AZUREML_MODEL_DIR/<model_name>`` if it exists and is not a classic folder of numeric
   version folders (a model registered from ``sklearn_regression_model.pkl`` under that name is
   ``$AZUREML_MODEL_DIR/sklearn_regression_model.pkl``); failing that and step 2, if the folder holds exactly
   one file or folder, that entry (the model was registered under a name that
   differs from its file name; the classic SDK returned the single entry of the version folder the same way).
2. classic layout ``azureml-models/<model_name>/<version>/<single file or folder>`` (latest numeric version
   when ``version`` is None), looked for at ``$AZUREML_MODEL_DIR`` itself (``AZUREML_MODEL_DIR`` pointing at
   ``.../azureml-models/<name>/<version>``), below it, next to it, and below the working directory.
3. ``./<model_name>`` in the working directory (the classic last resort).

Otherwise ``ModelNotFoundException`` names every place it looked and what ``AZUREML_MODEL_DIR`` contains.
No workspace access: ``_workspace`` is accepted and ignored.
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
        model_dir = os.environ.get("AZUREML_MODEL_DIR") or ""

        # 1. mldeploy layout
        if model_dir and os.path.isdir(model_dir):
            candidate = os.path.join(model_dir, model_name)
            if os.path.exists(candidate) and not _is_version_folder_set(candidate):
                return candidate
            tried.append(candidate)

        # 2. classic layout: azureml-models/<name>/<version>/<single entry>
        roots: list[str] = []
        if model_dir:
            norm = os.path.normpath(model_dir)
            parts = norm.split(os.sep)
            # AZUREML_MODEL_DIR = .../azureml-models/<name>/<version>
            if (
                len(parts) >= 3
                and parts[-3] == MODELS_DIR
                and parts[-2] == model_name
                and (version is None or parts[-1] == str(version))
                and os.path.isdir(norm)
            ):
                return _from_version_dir(norm)
            roots += [os.path.join(norm, MODELS_DIR), norm, os.path.join(os.path.dirname(norm), MODELS_DIR)]
        roots.append(os.path.abspath(MODELS_DIR))
        for root in dict.fromkeys(roots):
            name_dir = os.path.join(root, model_name)
            if not os.path.isdir(name_dir):
                tried.append(name_dir)
                continue
            ver = str(version) if version is not None else _latest_version(name_dir)
            if ver is None:
                tried.append(os.path.join(name_dir, "<version>"))
                continue
            version_dir = os.path.join(name_dir, ver)
            if os.path.isdir(version_dir):
                return _from_version_dir(version_dir)
            tried.append(version_dir)

        # 1b. single entry in AZUREML_MODEL_DIR (registered name differs from the file name)
        if model_dir and os.path.isdir(model_dir) and version is None:
            entries = [e for e in os.listdir(model_dir) if not e.startswith(".")]
            if len(entries) == 1 and entries[0] != MODELS_DIR:
                return os.path.join(model_dir, entries[0])

        # 3. ./<model_name>
        if os.path.exists(model_name):
            return model_name
        tried.append(os.path.abspath(model_name))

        where = _contents(model_dir) if model_dir else "AZUREML_MODEL_DIR is not set"
        raise ModelNotFoundException(
            f"Model {model_name!r}"
            + (f" version {version}" if version is not None else "")
            + f" not found. Looked at: {', '.join(tried)}."
            + f" AZUREML_MODEL_DIR={model_dir or '(unset)'}; {where}."
        )
