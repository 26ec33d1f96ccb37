"""Prefect glue shared by the stage tasks: retry policy, artifacts, failure reports.

The only module of the library that imports Prefect. Retries live here, in one place: a
stage is retried only when its error was classified transient at an adapter boundary, with
exponential backoff and jitter, a bounded number of attempts and a per-attempt timeout.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from prefect import get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.exceptions import MissingContextError
from prefect.tasks import Task, exponential_backoff

from mldeploy import diagnosis
from mldeploy.errors import MldeployError, is_transient

P = ParamSpec("P")
R = TypeVar("R")
MAX_ARTIFACT_CHARS = 400_000


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect's retry_condition_fn: retry only errors an adapter classified as transient."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # the result itself could not be read: do not retry blindly
        return False
    return isinstance(exc, BaseException) and is_transient(exc)


# Options every stage task shares. Side-effecting stages never use Prefect's input-hash cache.
STAGE_TASK_OPTIONS: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
    "cache_policy": NO_CACHE,
    "persist_result": False,
}


def logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("mldeploy")


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100]


def _attach(create: Callable[..., Any], **kwargs: Any) -> None:
    # Outside a run (unit tests, plain Python) there is nothing to attach to.
    with contextlib.suppress(MissingContextError):
        create(**kwargs)


def attach_markdown(key: str, markdown: str, description: str) -> None:
    if len(markdown) > MAX_ARTIFACT_CHARS:
        markdown = markdown[:MAX_ARTIFACT_CHARS] + "\n\n… (truncated; the whole text is in the file named above)"
    _attach(create_markdown_artifact, key=key, markdown=markdown, description=description)


def attach_table(key: str, rows: Sequence[dict[str, str]], description: str) -> None:
    _attach(create_table_artifact, key=key, table=list(rows), description=description)


def attach_link(key: str, link: str, text: str, description: str) -> None:
    _attach(create_link_artifact, key=key, link=link, link_text=text, description=description)


def code_block(text: str, lang: str = "") -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def diagnosis_of(stage: str, exc: BaseException) -> diagnosis.Diagnosis:
    found = exc.diagnosis if isinstance(exc, MldeployError) else None
    if found is None:
        found = diagnosis.unknown(stage, str(exc))
    if not found.stage:
        from dataclasses import replace

        found = replace(found, stage=stage)
    return found


def reports_failure(stage: str, service_of: Callable[..., str]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wrap a stage body: on failure attach the diagnosis to this task run and log it for humans."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                found = diagnosis_of(stage, exc)
                log = logger()
                kind = "transient (will be retried if attempts remain)" if is_transient(exc) else "permanent"
                log.error("%s failed [%s, %s]: %s\nfix: %s", stage, found.code, kind, found.summary, found.hint)
                attach_markdown(
                    artifact_key(service_of(*args, **kwargs), stage, "diagnosis"),
                    found.to_markdown(),
                    f"Why {stage} failed and what to do",
                )
                raise

        return wrapper

    return decorate
