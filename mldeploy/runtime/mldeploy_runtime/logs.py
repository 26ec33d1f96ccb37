"""Process log lines: plain text on stderr, every runtime line prefixed ``mldeploy-runtime: ``.

The deploy stage parses these marker lines out of the container log, so their wording is a contract:

* ``mldeploy-runtime: init() done in <s>s; serving on port <port>``
* ``mldeploy-runtime: init() failed`` / ``mldeploy-runtime: entry script <path> failed to import``
  (followed by the traceback)
* ``mldeploy-runtime: init() could not find <filename>``
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
