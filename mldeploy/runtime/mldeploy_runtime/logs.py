"""Process log lines: plain text on stderr, every runtime line prefixed ``mldeploy-runtime: ``.

The deploy stage parses these marker lines out of the container log, so their wording is a contract:

* ``mldeploy-runtime: init() done in <s>s; serving on port <port>``
* ``mldeploy-runtime: init() failed`` / ``mldeploy-runtime: entry script <path> failed to import``
  (followed by the traceback)
* ``mldeploy-runtime: init() could not find <filename>``, then one of
  ``mldeploy-runtime: <filename> is a folder; a file was expected`` (the path exists as a folder),
  ``mldeploy-runtime: <filename> is outside the model folder; AML_APP_ROOT=<path> contains:`` and a listing
  (a data file the script opens), or nothing more (a model path: the model folder listing follows);
  ``mldeploy-runtime: a file named <name> is at <path>`` when the model folder has the file elsewhere
* ``mldeploy-runtime: AZUREML_MODEL_DIR=<path> contains:`` then up to 50 lines ``  <relative path>``
* ``mldeploy-runtime: run() failed ...`` (followed by the traceback)
"""

from __future__ import annotations

import os
import sys
import traceback

PREFIX = "mldeploy-runtime: "
LISTING_LIMIT = 50


def log(message: str) -> None:
    """One or more lines on stderr, each with the prefix, flushed at once."""
    text = "".join(f"{PREFIX}{line}\n" for line in message.splitlines() or [""])
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def log_raw(text: str) -> None:
    """Text as-is (tracebacks, listings) on stderr."""
    if not text.endswith("\n"):
        text += "\n"
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def log_exception(ex: BaseException) -> None:
    log_raw("".join(traceback.format_exception(type(ex), ex, ex.__traceback__)))


def missing_filenames(ex: BaseException) -> list[str]:
    """Filenames of OSErrors (FileNotFoundError, ...) in the exception and its cause/context chain."""
    names: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = ex
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.filename:
            name = os.fsdecode(cur.filename) if isinstance(cur.filename, (bytes, str)) else str(cur.filename)
            if name not in names:
                names.append(name)
        cur = cur.__cause__ or cur.__context__
    return names


def explain_missing_module(ex: BaseException) -> None:
    """When an import failed on a module an installed distribution ships, say which one: the package is
    there, so something hides it (a same-named file or folder in the app, a shadowing namespace)."""
    cur: BaseException | None = ex
    while cur is not None and not isinstance(cur, ModuleNotFoundError):
        cur = cur.__cause__ or cur.__context__
    name = getattr(cur, "name", None)
    if not name:
        return
    from importlib import metadata

    wanted = (name.replace(".", "/") + "/__init__.py", name.replace(".", "/") + ".py")
    for dist in metadata.distributions():
        if any(str(f) in wanted for f in dist.files or ()):
            log(
                f"module {name} is missing although the installed distribution {dist.metadata['Name']} "
                f"{dist.version} provides it"
            )
            return


def explain_missing(ex: BaseException, model_dir: str | None, app_root: str) -> None:
    """For each path an OSError in ``ex`` names: whether it is a folder, a model path or an app file,
    and where a file of that name really is (the deploy stage tells these apart from these lines)."""
    for name in missing_filenames(ex):
        log(f"init() could not find {name}")
        path = os.path.abspath(name)
        if os.path.isdir(path):
            log(f"{name} is a folder; a file was expected")
            files, _ = list_files(path, 20)
            log_raw("".join(f"  {f}\n" for f in files) or "  (empty folder)\n")
            continue
        base = os.path.basename(path.rstrip("/"))
        for root in (model_dir, app_root):
            found = _find_named(root, base) if root and base else None
            if found and os.path.abspath(found) != path:
                log(f"a file named {base} is at {found}")
                break
        inside_models = bool(model_dir) and _is_under(path, os.path.abspath(model_dir or ""))
        if not inside_models and "azureml-models" not in path.split(os.sep):
            log(f"{name} is outside the model folder; AML_APP_ROOT={app_root} contains:")
            files, more = list_files(app_root)
            log_raw("".join(f"  {f}\n" for f in files) or "  (empty)\n")
            if more:
                log(f"listing truncated: {more} more files not shown")
            log(f"the working directory is {os.getcwd()}")


def _is_under(path: str, root: str) -> bool:
    return bool(root) and (path == root or path.startswith(root.rstrip(os.sep) + os.sep))


def _find_named(root: str, name: str, limit: int = 5000) -> str | None:
    """The first file called ``name`` below ``root`` (a bounded walk: the folders may be large)."""
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if name in filenames:
            return os.path.join(dirpath, name)
        seen += len(filenames)
        if seen > limit:
            return None
    return None


def list_files(root: str, limit: int = LISTING_LIMIT) -> tuple[list[str], int]:
    """Up to ``limit`` files below ``root`` (sorted relative paths) and how many more there are."""
    found: list[str] = []
    more = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if len(found) < limit:
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
            else:
                more += 1
        if not filenames and not dirnames and dirpath != root and len(found) < limit:
            found.append(os.path.relpath(dirpath, root) + "/")  # show empty folders too
    return found, more


def log_model_dir(model_dir: str | None) -> None:
    if not model_dir:
        log("AZUREML_MODEL_DIR is not set")
        return
    if not os.path.isdir(model_dir):
        log(f"AZUREML_MODEL_DIR={model_dir} does not exist or is not a folder")
        return
    files, more = list_files(model_dir)
    log(f"AZUREML_MODEL_DIR={model_dir} contains:")
    if files:
        log_raw("".join(f"  {f}\n" for f in files))
    if more:
        log(f"listing truncated: {more} more files not shown")
    elif not files:
        log("(AZUREML_MODEL_DIR is empty)")
