"""The raw ASGI application (no framework): routes, probes, key auth, body limits, the run() call, JSON responses.

``run()`` is called inline on the event loop thread (a threadpool measured 34-52 % slower); one request is scored
at a time per worker process, like the classic server's sync gunicorn workers. Scale with ``WORKER_COUNT``.

The app exists before the script is loaded: ``GET /`` (liveness) answers at once, ``GET /readyz`` answers 503
until ``init()`` returned, and ``/score`` / ``/swagger.json`` requests that arrive while loading wait for it (as
they waited in the classic server's listen backlog), up to ``SCORING_TIMEOUT_MS``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from . import contract
from .auth import KeyAuth
from .logs import log, log_raw
from .settings import Settings
from .state import FAILED, WorkerState
from .swagger import SwaggerDocs
from .user_script import ClientError, UserScript, nested_deeper_than, schema_input_error

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
HTML = b"text/html; charset=utf-8"
RUN_FAILED_MSG = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL_MSG = "An unexpected internal error occurred. Check the logs for more info."
# werkzeug's wording, which the classic (Flask) server answered with
NOT_FOUND_MSG = (
    "The requested URL was not found on the server. If you entered the URL manually please check your spelling and "
    "try again."
)
NOT_ALLOWED_MSG = "The method is not allowed for the requested URL."
UNAUTHORIZED_MSG = "Missing or invalid key: send the header 'Authorization: Bearer <key>'."
HEADER_LIMIT = 100  # classic limit for x-request-id and friends (431 above it)
DRAIN_LIMIT = 64 * 1024 * 1024
AUTH_DRAIN_LIMIT = 64 * 1024

# path -> allowed methods (HEAD is implied by GET, except on /score, as in the classic server)
ROUTES: dict[str, tuple[str, ...]] = {
    contract.LIVENESS_PATH: ("GET",),
    contract.SCORE_PATH: ("GET", "POST"),
    contract.SWAGGER_PATH: ("GET",),
    contract.READINESS_PATH: ("GET",),
    contract.INFO_PATH: ("GET",),
}
OPEN_PATHS = (contract.LIVENESS_PATH, contract.READINESS_PATH)  # probes never need a key

# request headers score() reads, in the order it unpacks them
WANTED_HEADERS = {
    b"content-length": 0,
    b"content-type": 1,
    b"x-request-id": 2,
    b"authorization": 3,
    b"x-ms-request-id": 4,
    b"x-ms-client-request-id": 5,
    b"traceid": 6,
    b"origin": 7,
}

RUN_FAILED_TRUE = (b"x-ms-run-function-failed", b"True")
RUN_FAILED_FALSE = (b"x-ms-run-function-failed", b"False")


class ScoringTimeout(BaseException):
    """Raised by the SIGALRM handler inside run().

    A BaseException, so that ``except Exception`` in the user's run() cannot swallow it.
    """


def _alarm(signum: int, frame: Any) -> None:
    raise ScoringTimeout


class RequestIds:
    """UUID-shaped request ids at a fraction of ``str(uuid.uuid4())``'s cost (which was ~8 us, 4 % of a request).

    A random per-process prefix (96 bits) and a counter: unique across processes and replicas, never repeated.
    """

    def __init__(self) -> None:
        h = uuid.uuid4().hex
        self._prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-"
        self._count = int(h[20:], 16)

    def __call__(self) -> bytes:
        self._count = (self._count + 1) & 0xFFFFFFFFFFFF
        return f"{self._prefix}{self._count:012x}".encode()


def _error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


def make_app(settings: Settings, state: WorkerState, info: dict[str, Any]) -> Callable[..., Awaitable[None]]:
    """The ASGI app of one worker; ``state`` says whether its script is loaded (see ``install``)."""
    max_body = settings.max_body_bytes
    max_depth = settings.max_json_depth
    debug = settings.debug
    timeout_ms = settings.scoring_timeout_ms
    timeout_s = timeout_ms / 1000.0
    wait_s = timeout_s if timeout_s > 0 else None
    use_timer = timeout_s > 0
    setitimer = signal.setitimer
    itimer_real = signal.ITIMER_REAL
    perf = time.perf_counter
    dumps = json.dumps
    new_request_id = RequestIds()
    auth = KeyAuth(settings.auth, log) if settings.auth else None
    cors = set(settings.cors_origins)
    cors_any = "*" in cors

    # set by install() once the script is loaded (in the event loop thread, before waiters are released)
    run: Callable[..., Any] = _not_loaded
    parse: Callable[..., Any] = _not_loaded
    mode = ""
    fast_string = False
    swagger: SwaggerDocs | None = None
    ready = False

    def install() -> None:
        nonlocal run, parse, mode, fast_string, swagger, ready, use_timer
        script: UserScript = state.script
        run, parse, mode = script.run, script.parse, script.mode
        fast_string = script.takes_body_positionally
        swagger = state.swagger
        if use_timer:
            try:
                signal.signal(signal.SIGALRM, _alarm)
            except (ValueError, OSError, AttributeError):  # not the main thread / no SIGALRM
                use_timer = False
                log("SIGALRM is not available: SCORING_TIMEOUT_MS is not enforced")
        ready = True

    state.on_ready(install)

    async def respond(
        send: Send,
        status: int,
        body: bytes,
        ctype: bytes,
        head: bool = False,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})

    async def read_body(receive: Receive, declared: int, message: dict[str, Any]) -> tuple[bytes | None, bool]:
        """(the whole body, False), or (None, close_connection) when it exceeds the limit; ``message`` is the
        first message, already received.

        An oversized body is still read and discarded (up to DRAIN_LIMIT) so that the client, which usually
        sends the whole body before reading, gets the 413 instead of a connection reset.
        """
        if declared > DRAIN_LIMIT:
            return None, True
        chunks: list[bytes] = []
        size = 0
        too_big = declared > max_body
        first = True
        while True:
            if not first:
                message = await receive()
            first = False
            if message["type"] == "http.disconnect":
                raise ConnectionError("client disconnected")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > max_body:
                    too_big = True
                    chunks.clear()
                    if size > DRAIN_LIMIT:
                        return None, True
                elif not too_big:
                    chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if too_big:
            return None, False
        return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), False

    def cors_headers(origin: bytes | None) -> list[tuple[bytes, bytes]]:
        if origin is None:
            return []
        text = origin.decode("latin-1")
        if cors_any:
            return [(b"access-control-allow-origin", b"*")]
        if text in cors:
            return [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
        return []

    async def not_ready(send: Send, extra: list[tuple[bytes, bytes]]) -> None:
        if state.phase == FAILED:
            msg = "The scoring script failed to load; the service is stopping. Check the logs for more info."
        else:
            msg = f"The model is still loading (init() has run for {state.loading_seconds():.0f} s); retry later."
        await respond(send, 503, _error_body(msg), JSON, extra=[*extra, (b"retry-after", b"1")])

    async def score(scope: Scope, receive: Receive, send: Send) -> None:
        # the headers the runtime looks at, by position (one dict lookup per request header)
        h: list[Any] = [None, None, None, None, None, None, None, None]
        for name, value in scope["headers"]:
            i = WANTED_HEADERS.get(name)
            if i is not None:
                h[i] = value
        declared_raw, ctype_raw, request_id, authorization, ms_request_id, client_request_id, trace_id, origin = h

        # request ids, as the classic server echoed them
        if request_id is None:
            request_id = new_request_id()
        elif len(request_id) > HEADER_LIMIT:
            msg = f"x-request-id must not exceed {HEADER_LIMIT} characters"
            await respond(send, 431, _error_body(msg), JSON, extra=[RUN_FAILED_FALSE])
            return
        if ms_request_id:
            legacy_id = ms_request_id
            client_request_id = client_request_id or ms_request_id
        else:
            legacy_id = client_request_id or request_id
        ids = [(b"x-request-id", request_id), (b"x-ms-request-id", legacy_id)]
        if client_request_id is not None or trace_id is not None or origin is not None:
            if len(legacy_id) > HEADER_LIMIT or (client_request_id and len(client_request_id) > HEADER_LIMIT):
                msg = f"x-ms-request-id and x-ms-client-request-id must not exceed {HEADER_LIMIT} characters"
                extra = [(b"x-request-id", request_id), RUN_FAILED_FALSE]
                await respond(send, 431, _error_body(msg), JSON, extra=extra)
                return
            if client_request_id:
                ids.append((b"x-ms-client-request-id", client_request_id))
            if trace_id is not None:
                ids.append((b"traceid", trace_id))
            if cors and origin is not None:
                ids += cors_headers(origin)
        declared = 0
        if declared_raw is not None:
            try:
                declared = int(declared_raw)
            except ValueError:
                declared = 0

        if auth is not None and not auth.check(authorization):
            extra = [*ids, (b"www-authenticate", b"Bearer"), RUN_FAILED_FALSE]
            if declared > AUTH_DRAIN_LIMIT:
                extra.append((b"connection", b"close"))
            await respond(send, 401, _error_body(UNAUTHORIZED_MSG), JSON, extra=extra)
            return

        method = scope["method"]
        if method == "POST":
            message = await receive()
            body = message.get("body", b"")
            if message.get("more_body", False) or len(body) > max_body or message["type"] != "http.request":
                try:
                    body, close = await read_body(receive, declared, message)
                except ConnectionError:
                    return
            if body is None:
                msg = f"Request body is larger than the limit of {max_body} bytes (MLDEPLOY_MAX_BODY_BYTES)."
                extra = [*ids, RUN_FAILED_FALSE, (b"connection", b"close")] if close else [*ids, RUN_FAILED_FALSE]
                await respond(send, 413, _error_body(msg), JSON, extra=extra)
                return
        else:
            body = b""

        if not ready and not await state.wait(wait_s):
            await not_ready(send, ids)
            return

        if fast_string and method == "POST":  # undecorated run(raw_data): the common case, kept short
            if max_depth and body.count(b"[") + body.count(b"{") > max_depth and nested_deeper_than(body, max_depth):
                msg = f"Request JSON is nested deeper than {max_depth} levels (MLDEPLOY_MAX_JSON_DEPTH)."
                await respond(send, 400, _error_body(msg), JSON, extra=[*ids, RUN_FAILED_FALSE])
                return
            try:
                args: tuple[Any, ...] = (body.decode("utf-8"),)
            except UnicodeDecodeError as ex:
                msg = f"Input cannot be decoded as UTF-8: {ex}"
                await respond(send, 400, _error_body(msg), JSON, extra=[*ids, RUN_FAILED_FALSE])
                return
            kwargs: dict[str, Any] = {}
        else:
            if method == "POST" and mode == "string" and nested_deeper_than(body, max_depth):
                msg = f"Request JSON is nested deeper than {max_depth} levels (MLDEPLOY_MAX_JSON_DEPTH)."
                await respond(send, 400, _error_body(msg), JSON, extra=[*ids, RUN_FAILED_FALSE])
                return
            try:
                args, kwargs = parse(body, None if ctype_raw is None else ctype_raw.decode("latin-1"), scope)
            except ClientError as ex:
                await respond(send, ex.status, _error_body(ex.message), JSON, extra=[*ids, RUN_FAILED_FALSE])
                return

        started = perf()
        try:
            if use_timer:
                setitimer(itimer_real, timeout_s)
                try:
                    result = run(*args, **kwargs)
                finally:
                    setitimer(itimer_real, 0)
            else:
                result = run(*args, **kwargs)
        except ScoringTimeout:
            rid = request_id.decode("latin-1")
            log(f"run() failed: did not finish within SCORING_TIMEOUT_MS={timeout_ms} (request id {rid})")
            log_raw(traceback.format_exc())
            msg = f"Scoring timeout after {timeout_ms} ms"
            await respond(send, 500, _error_body(msg), JSON, extra=[*ids, RUN_FAILED_TRUE])
            return
        except Exception as ex:
            if mode == "schema":
                bad = schema_input_error(ex, run)
                if bad is not None:
                    field, declared_type = bad
                    msg = (
                        f"Invalid value for the {field!r} parameter: it cannot be converted to the type "
                        f"declared by the input schema ({declared_type})."
                    )
                    if debug:
                        msg += f" {type(ex).__name__}: {ex}"
                    await respond(send, 400, _error_body(msg), JSON, extra=[*ids, RUN_FAILED_FALSE])
                    return
            rid = request_id.decode("latin-1")
            log(f"run() failed: {type(ex).__name__} (request id {rid})")
            log_raw(traceback.format_exc())
            msg = RUN_FAILED_MSG
            if debug:
                msg = f"{RUN_FAILED_MSG} {type(ex).__name__}: {ex}\n{traceback.format_exc()}"
            await respond(send, 500, _error_body(msg), JSON, extra=[*ids, RUN_FAILED_TRUE])
            return
        elapsed = (b"x-ms-run-fn-exec-ms", b"%.3f" % ((perf() - started) * 1000))

        bridge = sys.modules.get(BRIDGE)  # loaded by a script that imported AMLResponse or uses @rawhttp
        if bridge is not None and bridge.is_response(result):
            await send_response(send, bridge, result, ids, elapsed, method == "HEAD")
            return
        try:
            out = b"{}" if result is None else dumps(result).encode()
        except (TypeError, ValueError, OverflowError, RecursionError) as ex:
            rid = request_id.decode("latin-1")
            log(
                f"run() returned a value that cannot be serialized to JSON: {type(result).__name__}: "
                f"{type(ex).__name__}: {ex} (request id {rid}); return lists/dicts/str/numbers, "
                "e.g. call .tolist() on numpy arrays"
            )
            msg = INTERNAL_MSG
            if debug:
                msg = f"{INTERNAL_MSG} run() returned {type(result).__name__}: {ex}"
            await respond(send, 500, _error_body(msg), JSON, extra=[*ids, RUN_FAILED_FALSE])
            return
        headers = [(b"content-type", JSON), (b"content-length", b"%d" % len(out)), RUN_FAILED_FALSE, elapsed, *ids]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    def readiness() -> tuple[int, bytes]:
        ready_n, failed_n, total = state.ready_workers()
        if ready_n == total:
            return 200, b"Ready"
        if failed_n:
            return 503, b"Failed: init() failed; the service is stopping"
        if total == 1:
            return 503, f"Loading: init() has run for {state.loading_seconds():.1f} s".encode()
        return 503, f"Loading: {ready_n} of {total} workers ready".encode()

    def info_body() -> bytes:
        ready_n, _, total = state.ready_workers()
        doc = {
            **info,
            "pid": os.getpid(),
            "uid": os.geteuid(),
            "worker": state.worker,
            "state": state.phase,
            "ready": ready_n == total,
            "workers_ready": ready_n,
            "input_mode": mode or None,
            "load_seconds": None if state.load_seconds is None else round(state.load_seconds, 6),
            "init_seconds": None if state.init_seconds is None else round(state.init_seconds, 6),
            "loading_seconds": None if state.phase != "loading" else round(state.loading_seconds(), 3),
            "auth": auth.names if auth is not None else [],
        }
        return json.dumps(doc).encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        state.attach(asyncio.get_running_loop())
                        if state.on_started is not None:
                            state.on_started()
                        await send({"type": "lifespan.startup.complete"})
                    elif message["type"] == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            return
        path = scope["path"]
        if "//" in path:  # the classic server answered //score as /score (werkzeug merges slashes)
            path = re.sub("/{2,}", "/", path)
        method = scope["method"]
        if path == contract.SCORE_PATH and (
            method == "POST" or method == "GET" or (method == "OPTIONS" and mode == "raw")
        ):
            started = False

            async def tracked(message: dict[str, Any]) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            try:
                await score(scope, receive, tracked)
            except Exception:  # an input no check foresaw, or a bug of ours: JSON, never a plain-text 500
                log(f"internal error while answering {method} {path}")
                log_raw(traceback.format_exc())
                if not started:
                    await respond(send, 500, _error_body(INTERNAL_MSG), JSON, extra=[RUN_FAILED_FALSE])
            return
        allowed = ROUTES.get(path)
        if allowed is None:
            await respond(send, 404, _error_body(NOT_FOUND_MSG), JSON, extra=[RUN_FAILED_FALSE])
            return
        is_get = method == "GET" or (method == "HEAD" and path != contract.SCORE_PATH)
        if is_get:
            head = method == "HEAD"
            extra: list[tuple[bytes, bytes]] = []
            if cors:
                extra = cors_headers(_header(scope, b"origin"))
            if path == contract.LIVENESS_PATH:
                if state.phase == FAILED:
                    await respond(send, 503, b"Failed", TEXT, head, extra)
                else:  # text/html, as Flask sent the classic server's "Healthy"
                    await respond(send, 200, b"Healthy", HTML, head, extra)
                return
            if path == contract.READINESS_PATH:
                status, text = readiness()
                await respond(send, status, text, TEXT, head, extra)
                return
            if auth is not None and not auth.check(_header(scope, b"authorization")):
                extra += [(b"www-authenticate", b"Bearer")]
                await respond(send, 401, _error_body(UNAUTHORIZED_MSG), JSON, head, extra)
                return
            if path == contract.INFO_PATH:
                await respond(send, 200, info_body(), JSON, head, extra)
                return
            # /swagger.json
            if not ready and not await state.wait(wait_s):
                await not_ready(send, extra)
                return
            version = None
            qs = scope.get("query_string", b"")
            if qs:
                from urllib.parse import parse_qs

                values = parse_qs(qs.decode("latin-1")).get("version")
                version = values[0] if values else None
            assert swagger is not None
            status, body = swagger.get(version)
            await respond(send, status, body, JSON, head, [*extra, RUN_FAILED_FALSE])
            return
        if method == "OPTIONS":
            extra = []
            if cors:
                origin = _header(scope, b"origin")
                extra = cors_headers(origin)
                if extra and _header(scope, b"access-control-request-method") is not None:
                    extra.append((b"access-control-allow-methods", b"GET, POST"))
                    requested = _header(scope, b"access-control-request-headers")
                    if requested:
                        extra.append((b"access-control-allow-headers", requested))
            if path == contract.SCORE_PATH:
                await respond(send, 200, b"", HTML, extra=[*extra, RUN_FAILED_FALSE])
                return
            allow = ", ".join([*allowed, "HEAD", "OPTIONS"])
            await respond(send, 200, b"", TEXT, extra=[*extra, (b"allow", allow.encode())])
            return
        if path == contract.SCORE_PATH:
            if method == "HEAD":  # reaches the classic handler, which refuses it itself
                await respond(send, 405, _error_body("Method not allowed"), JSON, extra=[RUN_FAILED_FALSE])
            else:
                allow_score = [(b"allow", b"GET, OPTIONS, POST"), RUN_FAILED_FALSE]
                await respond(send, 405, _error_body(NOT_ALLOWED_MSG), JSON, extra=allow_score)
            return
        allow = ", ".join([*allowed, "HEAD", "OPTIONS"])
        await respond(
            send, 405, _error_body(NOT_ALLOWED_MSG), JSON, extra=[(b"allow", allow.encode()), RUN_FAILED_FALSE]
        )

    return app


BRIDGE = __package__ + ".werkzeug_bridge"
SERVER_IDS = {b"x-request-id", b"x-ms-request-id", b"x-ms-client-request-id"}


async def send_response(
    send: Send, bridge: Any, response: Any, ids: list[tuple[bytes, bytes]], elapsed: tuple[bytes, bytes], head: bool
) -> None:
    """A response object run() returned, as it is — the request ids are the server's (as in the classic
    server, whose values replaced the script's), and a generator body is streamed as it yields."""
    status, headers, chunks = bridge.response_parts(response)
    server_ids = {name for name, _ in ids} & SERVER_IDS
    headers = [h for h in headers if h[0] not in server_ids]
    if status >= 500:
        headers = [h for h in headers if h[0] != b"x-ms-run-function-failed"] + [RUN_FAILED_TRUE]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, elapsed, *ids]})
    if not head:
        for chunk in chunks:
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _not_loaded(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("the scoring script is not loaded")


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return bytes(value)
    return None
