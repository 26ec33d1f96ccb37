"""The raw ASGI application (no framework): routes, body limit, run() call, JSON responses.

``run()`` is called inline on the event loop thread (a threadpool measured 34-52 % slower); one request is
scored
at a time per worker process, like the classic server's sync gunicorn workers. Scale with ``WORKER_COUNT``.
"""

from __future__ import annotations

import json
import signal
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from .logs import log, log_raw
from .rawhttp import AMLResponse
from .settings import Settings
from .swagger import SwaggerDocs
from .user_script import ClientError, UserScript

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"
RUN_FAILED_MSG = "An unexpected error occurred in scoring script. Check the logs for more info."
DRAIN_LIMIT = 64 * 1024 * 1024
INTERNAL_MSG = "An unexpected internal error occurred. Check the logs for more info."

# path -> allowed methods (HEAD is implied by GET)
ROUTES: dict[str, tuple[str, ...]] = {
    "/": ("GET",),
    "/score": ("POST",),
    "/swagger.json": ("GET",),
    "/readyz": ("GET",),
    "/info": ("GET",),
}


class ScoringTimeout(BaseException):
    """Raised by the SIGALRM handler inside run().

    A BaseException, so that ``except Exception`` in the user's run() cannot swallow it.
    """


def _alarm(signum: int, frame: Any) -> None:
    raise ScoringTimeout


def _error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


def make_app(
    script: UserScript, settings: Settings, info: dict[str, Any]
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    run = script.run
    parse = script.parse
    max_body = settings.max_body_bytes
    debug = settings.debug
    timeout_s = settings.scoring_timeout_ms / 1000.0
    use_timer = timeout_s > 0
    if use_timer:
        try:
            signal.signal(signal.SIGALRM, _alarm)
        except (ValueError, OSError, AttributeError):  # not the main thread / no SIGALRM
            use_timer = False
    setitimer = signal.setitimer
    itimer_real = signal.ITIMER_REAL
    perf = time.perf_counter
    dumps = json.dumps
    uuid4 = uuid.uuid4
    swagger = SwaggerDocs(
        settings.app_root,
        run,
        script.mode == "schema",
        settings.service_name,
        settings.service_version,
        settings.service_path_prefix,
        log,
    )
    info_body = json.dumps(info).encode()
    healthy = b"Healthy"
    ready = b"Ready"

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

    async def read_body(receive: Receive, declared: int) -> tuple[bytes | None, bool]:
        """(the whole body, False), or (None, close_connection) when it exceeds the limit.

        An oversized body is still read and discarded (up to DRAIN_LIMIT) so that the client, which usually
        sends the whole body before reading, gets the 413 instead of a connection reset.
        """
        if declared > DRAIN_LIMIT:
            return None, True
        chunks: list[bytes] = []
        size = 0
        too_big = declared > max_body
        while True:
            message = await receive()
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

    async def score(scope: Scope, receive: Receive, send: Send) -> None:
        declared = 0
        ctype: str | None = None
        request_id: str | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
            elif name == b"content-type":
                ctype = value.decode("latin-1")
            elif name == b"x-request-id" and len(value) <= 100:
                request_id = value.decode("latin-1")
        if request_id is None:
            request_id = str(uuid4())
        rid = [(b"x-request-id", request_id.encode("latin-1"))]
        try:
            body, close = await read_body(receive, declared)
        except ConnectionError:
            return
        if body is None:
            msg = f"Request body is larger than the limit of {max_body} bytes (MLDEPLOY_MAX_BODY_BYTES)."
            extra = [*rid, (b"connection", b"close")] if close else rid
            await respond(send, 413, _error_body(msg), JSON, extra=extra)
            return
        try:
            args, kwargs = parse(body, ctype, scope)
        except ClientError as ex:
            await respond(send, ex.status, _error_body(ex.message), JSON, extra=rid)
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
            log(
                f"run() failed: did not finish within SCORING_TIMEOUT_MS={settings.scoring_timeout_ms} "
                f"(request id {request_id})"
            )
            log_raw(traceback.format_exc())
            msg = f"Scoring timeout after {settings.scoring_timeout_ms} ms"
            await respond(send, 500, _error_body(msg), JSON, extra=[*rid, (b"x-ms-run-function-failed", b"True")])
            return
        except Exception as ex:
            log(f"run() failed: {type(ex).__name__} (request id {request_id})")
            log_raw(traceback.format_exc())
            msg = RUN_FAILED_MSG
            if debug:
                msg = f"{RUN_FAILED_MSG} {type(ex).__name__}: {ex}\n{traceback.format_exc()}"
            await respond(send, 500, _error_body(msg), JSON, extra=[*rid, (b"x-ms-run-function-failed", b"True")])
            return
        elapsed = f"{(perf() - started) * 1000:.3f}".encode()

        if isinstance(result, AMLResponse):
            headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in result.headers]
            headers += [
                (b"content-length", str(len(result.body)).encode()),
                (b"x-ms-run-fn-exec-ms", elapsed),
                *rid,
            ]
            await send({"type": "http.response.start", "status": result.status_code, "headers": headers})
            await send({"type": "http.response.body", "body": result.body})
            return
        try:
            out = b"{}" if result is None else dumps(result).encode()
        except (TypeError, ValueError, OverflowError, RecursionError) as ex:
            log(
                f"run() returned a value that cannot be serialized to JSON: {type(result).__name__}: "
                f"{type(ex).__name__}: {ex} (request id {request_id}); return lists/dicts/str/numbers, "
                "e.g. call .tolist() on numpy arrays"
            )
            msg = INTERNAL_MSG
            if debug:
                msg = f"{INTERNAL_MSG} run() returned {type(result).__name__}: {ex}"
            await respond(send, 500, _error_body(msg), JSON, extra=rid)
            return
        await respond(
            send,
            200,
            out,
            JSON,
            extra=[(b"x-ms-run-function-failed", b"False"), (b"x-ms-run-fn-exec-ms", elapsed), *rid],
        )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":  # only when lifespan is enabled
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    elif message["type"] == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            return
        path = scope["path"]
        method = scope["method"]
        if path == "/score" and method == "POST":
            await score(scope, receive, send)
            return
        allowed = ROUTES.get(path)
        if allowed is None:
            await respond(send, 404, _error_body(f"Not found: {path}"), JSON)
            return
        is_get = method == "GET" or method == "HEAD"
        if is_get and "GET" in allowed:
            head = method == "HEAD"
            if path == "/":
                await respond(send, 200, healthy, TEXT, head)
            elif path == "/swagger.json":
                version = None
                qs = scope.get("query_string", b"")
                if qs:
                    from urllib.parse import parse_qs

                    values = parse_qs(qs.decode("latin-1")).get("version")
                    version = values[0] if values else None
                status, body = swagger.get(version)
                await respond(send, status, body, JSON, head)
            elif path == "/readyz":
                await respond(send, 200, ready, TEXT, head)
            else:
                await respond(send, 200, info_body, JSON, head)
            return
        allow = ", ".join([*allowed, "HEAD", "OPTIONS"] if "GET" in allowed else [*allowed, "OPTIONS"])
        if method == "OPTIONS":
            await respond(send, 200, b"", TEXT, extra=[(b"allow", allow.encode())])
            return
        await respond(send, 405, _error_body("Method not allowed"), JSON, extra=[(b"allow", allow.encode())])

    return app
