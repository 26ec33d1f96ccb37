"""Prefect glue shared by the stage tasks: retry policy, artifacts, failure reports.

The only module of the library that imports Prefect. Retries live here, in one place: a
stage is retried only when its error was classified transient at an adapter boundary, with
exponential backoff and jitter, a bounded number of attempts and a per-attempt timeout.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.tasks import Task, exponential_backoff

from mldeploy import diagnosis, retry
from mldeploy.errors import MldeployError, PermanentError, TransientError, is_transient
from mldeploy.redaction import redact

P = ParamSpec("P")
R = TypeVar("R")
MAX_ARTIFACT_CHARS = 400_000


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect's retry_condition_fn, applying :func:`mldeploy.retry.decide` (attempts are bounded by
    ``retries``). A server's Retry-After is honoured by waiting here before the backoff starts."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # the result itself could not be read: do not retry blindly
        return False
    if not isinstance(exc, BaseException):
        return False
    started = task_run.start_time
    elapsed = (datetime.now(UTC) - started).total_seconds() if started is not None else 0.0
    decision = retry.decide(exc, elapsed)
    if not decision.retry:
        if is_transient(exc):
            logger().warning("not retrying: %s", decision.reason)
        return False
    if decision.wait_first:
        logger().info("waiting %.1f s before the next attempt: %s", decision.wait_first, decision.reason)
        time.sleep(decision.wait_first)
    return True


# Every stage task shares these. Stages are not cached by Prefect: each stage checks whether its
# output already exists (content-addressed) and reuses it, so a rerun resumes where it failed.
STAGE_TASK_OPTIONS: dict[str, Any] = {
    "retries": retry.RETRY_ATTEMPTS,
    "retry_delay_seconds": exponential_backoff(backoff_factor=retry.RETRY_BACKOFF_SECONDS),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
    "cache_policy": NO_CACHE,
    "persist_result": False,
}

# --- secrets: known values are scrubbed from every log line, artifact and error we emit ---
_secrets: set[str] = set()


def keep_secrets(values: Sequence[str]) -> None:
    _secrets.update(v for v in values if v)


def scrub(text: str) -> str:
    return redact(text, _secrets) if _secrets else text


class _ScrubbingAdapter(logging.LoggerAdapter[Any]):
    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        text = str(msg) % args if args else str(msg)
        self.logger.log(level, scrub(text), **kwargs)


def logger() -> logging.LoggerAdapter[Any]:
    try:
        base: Any = get_run_logger()
    except MissingContextError:
        base = logging.getLogger("mldeploy")
    return _ScrubbingAdapter(base, {})


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100]


def _attach(create: Callable[..., Any], **kwargs: Any) -> None:
    for name in ("markdown", "link_text", "description"):
        if isinstance(kwargs.get(name), str):
            kwargs[name] = scrub(kwargs[name])
    if "table" in kwargs:
        kwargs["table"] = [{k: scrub(str(v)) for k, v in row.items()} for row in kwargs["table"]]
    # Outside a run (unit tests, plain Python, a task called through .fn()) there is nothing to attach to.
    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return
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
        found = replace(found, stage=stage)
    return found


def scrubbed_error(exc: Exception) -> Exception:
    """The same error with every known secret removed from its message and diagnosis."""
    if not _secrets:
        return exc
    if isinstance(exc, MldeployError):
        found = exc.diagnosis
        if found is not None:
            found = replace(found, summary=scrub(found.summary), detail=scrub(found.detail), hint=scrub(found.hint))
        log = scrub(exc.log) if exc.log else exc.log
        if scrub(exc.message) == exc.message and found == exc.diagnosis and log == exc.log:
            return exc
        clean = type(exc).__new__(type(exc))
        MldeployError.__init__(clean, scrub(exc.message), diagnosis=found, log=log)
        if isinstance(exc, TransientError):
            clean.delay = exc.delay  # type: ignore[attr-defined]
        return clean
    text = str(exc)
    return exc if scrub(text) == text else PermanentError(f"{type(exc).__name__}: {scrub(text)}")


def reports_failure(stage: str, service_of: Callable[..., str]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wrap a stage body: on failure attach the diagnosis to this task run and log it for humans."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except Exception as raw:
                exc = scrubbed_error(raw)
                found = diagnosis_of(stage, exc)
                log = logger()
                kind = "transient (will be retried if attempts remain)" if is_transient(exc) else "permanent"
                log.error("%s failed [%s, %s]: %s\nfix: %s", stage, found.code, kind, found.summary, found.hint)
                service = service_of(*args, **kwargs)
                attach_markdown(
                    artifact_key(service, stage, "diagnosis"),
                    found.to_markdown(),
                    f"Why {stage} failed and what to do",
                )
                if isinstance(exc, MldeployError) and exc.log:
                    attach_markdown(
                        artifact_key(service, stage, "log"), code_block(exc.log), f"The log behind the {stage} failure"
                    )
                if exc is raw:
                    raise
                raise exc from None  # the original may carry a secret in its message or chain

        return wrapper

    return decorate


# --- one deploy at a time per service ------------------------------------------------------------

# The slot is a lease, renewed while held; a crashed holder's slot is free again after this.
# Prefect refuses leases shorter than 60 s.
LOCK_LEASE_SECONDS = max(60.0, float(os.environ.get("MLDEPLOY_LOCK_LEASE_SECONDS", "60")))
LOCK_WAIT_SECONDS = float(os.environ.get("MLDEPLOY_LOCK_WAIT_SECONDS", "3600"))


def service_lock_name(service: str) -> str:
    return f"mldeploy-service-{service}"


def ensure_service_limit(service: str) -> str:
    """Create the service's concurrency limit (1 slot) if it does not exist yet; return its name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = service_lock_name(service)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another run created it first
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    return name


# --- runs killed on this machine end Crashed, and free their slot -------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """A flow run in progress on this machine: written at its start, removed at its end. A record
    whose process is gone was left by a killed run (SIGKILL, power loss): nothing else can tell."""

    flow_run_id: str
    pid: int
    start_ticks: int  # /proc/<pid>/stat field 22: tells a reused pid from the run's own process
    boot_id: str
    service: str = ""
    lease_id: str = ""  # the deploy slot's lease, while the run holds it

    def is_dead(self) -> bool:
        return self.boot_id != _boot_id() or _start_ticks(self.pid) != self.start_ticks


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return -1


def _runs_folder() -> Path:
    from mldeploy.settings import Settings

    return Settings.load().home / "runs"


def _write_record(record: RunRecord) -> None:
    folder = _runs_folder()
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{record.flow_run_id}.{os.getpid()}.tmp"
    staging.write_text(json.dumps(asdict(record)))
    os.replace(staging, folder / f"{record.flow_run_id}.json")


def _records() -> list[tuple[Path, RunRecord]]:
    found = []
    for path in sorted(_runs_folder().glob("*.json")):
        try:
            found.append((path, RunRecord(**json.loads(path.read_text()))))
        except (OSError, ValueError, TypeError):
            continue
    return found


def end_killed_runs() -> list[RunRecord]:
    """End every run this machine started whose process is gone: its flow run and unfinished task runs
    become Crashed (not Running forever), and its deploy slot, if it held one, is freed now rather
    than when its lease runs out."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.states import Crashed

    dead = [(path, record) for path, record in _records() if record.is_dead()]
    if not dead:
        return []
    log = logger()
    with get_client(sync_client=True) as client:
        for path, record in dead:
            message = f"its process (pid {record.pid}) was killed; found by a later run on the same machine"
            with contextlib.suppress(Exception):  # a lease that ran out, a run another server knows
                if record.lease_id:
                    client.release_concurrency_slots_with_lease(UUID(record.lease_id))
            with contextlib.suppress(Exception):
                run_id = UUID(record.flow_run_id)
                run = client.read_flow_run(run_id)
                if run.state is not None and not run.state.is_final():
                    client.set_flow_run_state(run_id, Crashed(message=message), force=True)
                tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
                for task_run in tasks:
                    if task_run.state is not None and not task_run.state.is_final():
                        client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
            path.unlink(missing_ok=True)
            log.warning(
                "flow run %s%s was killed: marked Crashed%s",
                record.flow_run_id,
                f" of {record.service}" if record.service else "",
                " and its deploy slot freed" if record.lease_id else "",
            )
    return [record for _, record in dead]


@contextlib.contextmanager
def recorded_run(service: str = "") -> Iterator[RunRecord | None]:
    """Record this flow run for the runs after it (see :func:`end_killed_runs`) for as long as it lives."""
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if not run_id:
        yield None
        return
    record = RunRecord(str(run_id), os.getpid(), _start_ticks(os.getpid()), _boot_id(), service)
    _write_record(record)
    try:
        yield record
    finally:
        (_runs_folder() / f"{record.flow_run_id}.json").unlink(missing_ok=True)


@contextlib.contextmanager
def service_lock(service: str) -> Iterator[None]:
    """Hold the service's single deploy slot (a Prefect global concurrency limit, strict).

    Scheduled, CI and manual runs of one service never interleave their deploy/smoke windows;
    different services proceed in parallel. The slot is a lease renewed while held: a holder that
    dies frees it when the lease runs out — or at once, when a later run on the same machine finds
    the holder's process gone (:func:`end_killed_runs`).
    """
    # Prefect's own lease helpers (what prefect.concurrency.sync.concurrency is made of), so the lease
    # id is ours to record; Prefect is pinned in constraints.txt.
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.concurrency._leases import maintain_concurrency_lease
    from prefect.concurrency._sync import acquire_concurrency_slots_with_lease, release_concurrency_slots_with_lease
    from prefect.runtime import flow_run

    name = ensure_service_limit(service)
    log = logger()
    end_killed_runs()
    log.info("waiting for the deploy slot of %s (concurrency limit %s)", service, name)
    started = datetime.now(UTC)
    run_id = flow_run.get_id()
    holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(run_id)) if run_id else None
    acquired = acquire_concurrency_slots_with_lease(
        [name], 1, timeout_seconds=LOCK_WAIT_SECONDS, strict=True, lease_duration=LOCK_LEASE_SECONDS, holder=holder
    )
    if run_id:
        _write_record(
            RunRecord(str(run_id), os.getpid(), _start_ticks(os.getpid()), _boot_id(), service, str(acquired.lease_id))
        )
    try:
        with maintain_concurrency_lease(acquired.lease_id, LOCK_LEASE_SECONDS, raise_on_lease_renewal_failure=True):
            waited = (datetime.now(UTC) - started).total_seconds()
            log.info("holding the deploy slot of %s (waited %.1f s)", service, waited)
            yield
    finally:
        release_concurrency_slots_with_lease(acquired.lease_id)
        if run_id:
            _write_record(RunRecord(str(run_id), os.getpid(), _start_ticks(os.getpid()), _boot_id(), service))


KUBECONFIG_BLOCK_VARIABLE = "MLDEPLOY_KUBECONFIG_BLOCK"


def secret_block_value(name: str) -> str:
    """The value of the Prefect Secret block ``name``; LookupError when there is none."""
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name).get()  # type: ignore[union-attr]
    except ValueError as exc:  # no such block
        raise LookupError(f"no Prefect Secret block named {name!r}") from exc
    return value if isinstance(value, str) else json.dumps(value)


def kubeconfig_from_block(name: str) -> dict[str, Any]:
    """A kubeconfig kept in a Prefect Secret block (its value: the kubeconfig's YAML), so a work pool's
    workers reach a cluster without a kubeconfig on their disk."""
    import yaml

    try:
        value = secret_block_value(name)
    except LookupError as exc:
        message = f"{exc} ({KUBECONFIG_BLOCK_VARIABLE})"
        raise PermanentError(message, diagnosis=diagnosis.cluster_unavailable(f"block {name}", message)) from exc
    loaded = yaml.safe_load(value)
    if not isinstance(loaded, dict) or "clusters" not in loaded:
        message = f"the Prefect Secret block {name!r} does not hold a kubeconfig (no 'clusters')"
        raise PermanentError(message, diagnosis=diagnosis.cluster_unavailable(f"block {name}", message))
    return dict(loaded)
