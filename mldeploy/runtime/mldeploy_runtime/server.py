"""Process entry: open the port at once, load the script and call init() in a loader thread, serve with uvicorn.

Liveness and readiness are separate: ``GET /`` answers 200 as soon as the port is open (the process is alive, even
while a large model loads), ``GET /readyz`` answers 200 only after ``init()`` returned (in every worker). Scoring
requests that arrive while loading wait for it. ``run()`` always runs in the main thread (SIGALRM timeouts);
``init()`` runs in the loader thread, so a script that installs signal handlers in ``init()`` cannot.

With ``WORKER_COUNT`` > 1 the parent binds the socket, forks that many workers that share it (a free worker
accepts the next connection), and writes nothing but supervises: when one worker exits, all stop.
``MLDEPLOY_REUSE_PORT=true`` gives each worker its own ``SO_REUSEPORT`` socket instead (the kernel hashes
connections over the workers).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import platform
import signal
import socket
import sys
import threading
import time
from typing import Any

from . import __version__
from .logs import explain_missing, explain_missing_module, log, log_exception, log_model_dir
from .settings import AUTH_KEY_VARS, Settings, SettingsError
from .state import FAILED, WorkerState
from .swagger import SwaggerDocs
from .user_script import ScriptError, ScriptImportError, UserScript

EXIT_BOOT_ERROR = 3  # gunicorn's (and the classic server's) "boot error" code


class _Stop:
    """SIGTERM/SIGINT before and after uvicorn's own handlers: a requested stop always ends in exit code 0.

    Installed before the port opens. Before uvicorn runs, a signal is remembered and makes it exit right after
    startup; after its graceful shutdown uvicorn re-raises the signal, which lands here again.
    """

    def __init__(self) -> None:
        self.requested = False
        self.server: Any = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self.server is not None:
            self.server.should_exit = True

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)


_STOP = _Stop()


def _line_buffer_stdio() -> None:
    """prints from score.py must reach the container log at once."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]


def _bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _start_debugger(settings: Settings) -> None:
    if settings.debug_port is None:
        return
    try:
        import debugpy  # only present in debug images
    except ImportError:
        log(f"AZUREML_DEBUG_PORT={settings.debug_port} is set but debugpy is not installed; not debugging")
        return
    debugpy.listen(("0.0.0.0", settings.debug_port))
    log(f"debugpy listening on port {settings.debug_port}")


def _wait_for_debugger(seconds: int) -> None:
    """Wait for a debugger to attach, at most ``seconds``: a forgotten debug setting never hangs a service."""
    try:
        import debugpy
    except ImportError:
        return
    log(f"waiting up to {seconds} s for the debugger to attach (MLDEPLOY_DEBUG_WAIT=true)")
    deadline = time.monotonic() + seconds
    while not debugpy.is_client_connected():
        if time.monotonic() >= deadline:
            log(f"no debugger attached within {seconds} s (MLDEPLOY_DEBUG_WAIT_SECONDS); continuing without one")
            return
        time.sleep(0.1)
    log("debugger attached")


def _load_and_init(settings: Settings) -> tuple[UserScript, float, float] | int:
    """(script, load_seconds, init_seconds) or the exit code after logging why it failed."""
    script = UserScript(
        settings.entry_script_path, settings.app_root, settings.source_dir, max_json_depth=settings.max_json_depth
    )
    t0 = time.perf_counter()
    try:
        script.load()
    except ScriptImportError as ex:
        cause = ex.__cause__ or ex
        log(f"entry script {settings.entry_script_path} failed to import")
        log_exception(cause)
        explain_missing_module(cause)
        explain_missing(cause, settings.model_dir, settings.app_root)
        log_model_dir(settings.model_dir)
        log(f"exiting with code {EXIT_BOOT_ERROR}")
        return EXIT_BOOT_ERROR
    except ScriptError as ex:
        log(f"cannot use the entry script: {ex}")
        if not os.path.isfile(settings.entry_script_path) and os.path.isdir(settings.app_root):
            entries = ", ".join(sorted(os.listdir(settings.app_root)))
            log(f"AML_APP_ROOT={settings.app_root} contains: {entries}")
        log(f"exiting with code {EXIT_BOOT_ERROR}")
        return EXIT_BOOT_ERROR
    t1 = time.perf_counter()
    try:
        script.init()
    except BaseException as ex:  # SystemExit from init() is a failed init too
        log("init() failed")
        log_exception(ex)
        explain_missing(ex, settings.model_dir, settings.app_root)
        log_model_dir(settings.model_dir)
        log(f"exiting with code {EXIT_BOOT_ERROR}")
        return EXIT_BOOT_ERROR
    return script, t1 - t0, time.perf_counter() - t1


def _loader(settings: Settings, state: WorkerState) -> None:
    """The loader thread: import the script, call init(), build the swagger documents, then mark the worker ready.

    On failure it logs why (see logs.py) and marks the worker failed, which stops the server with exit code 3.
    """
    try:
        if state.worker == 0 and settings.debug_port is not None and settings.debug_wait:
            _wait_for_debugger(settings.debug_wait_seconds)
        loaded = _load_and_init(settings)
        if isinstance(loaded, int):
            state.mark_failed(loaded)
            return
        script, load_s, init_s = loaded
        state.script = script
        state.swagger = SwaggerDocs(
            settings.app_root,
            script.run,
            script.mode == "schema",
            settings.service_name,
            settings.service_version,
            settings.service_path_prefix,
            log,
        )
        state.mark_ready(load_s, init_s)
        log(f"init() done in {init_s:.3f}s; serving on port {settings.port}")
        if settings.workers > 1:
            log(f"worker {state.worker + 1} of {settings.workers} (pid {os.getpid()}) is ready")
    except BaseException as ex:  # a bug here must not leave a live process that never becomes ready
        log("loading the scoring script failed unexpectedly")
        log_exception(ex)
        log(f"exiting with code {EXIT_BOOT_ERROR}")
        state.mark_failed(EXIT_BOOT_ERROR)


def serve(settings: Settings, sock: socket.socket, worker: int = 0, shared: mmap.mmap | None = None) -> int:
    """Serve on ``sock`` at once; load the script and call init() in a background thread meanwhile."""
    import uvicorn

    from .app import make_app

    if worker == 0:
        _start_debugger(settings)
    state = WorkerState(worker, settings.workers, shared)
    info: dict[str, Any] = {
        "runtime": "mldeploy-runtime",
        "runtime_version": __version__,
        "python": platform.python_version(),
        "workers": settings.workers,
        "entry_script": settings.entry_script_path,
        "model_dir": settings.model_dir,
        "max_body_bytes": settings.max_body_bytes,
        "max_json_depth": settings.max_json_depth,
        "scoring_timeout_ms": settings.scoring_timeout_ms,
        "debug": settings.debug,
    }
    app = make_app(settings, state, info)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "auto"
    http: Any
    try:
        from .limits import RequestLimits, guarded_protocol

        http = guarded_protocol(
            RequestLimits(
                max_head_bytes=settings.max_header_bytes,
                max_headers=settings.max_headers,
                header_timeout=settings.header_timeout_seconds,
                body_timeout=settings.body_timeout_seconds,
            )
        )
    except ImportError:  # no httptools: h11, whose own limit bounds the header block
        http = "h11"
    config = uvicorn.Config(
        app,
        loop=loop,
        http=http,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        ws="none",
        lifespan="on",
        interface="asgi3",
        access_log=settings.access_log,
        log_level=settings.log_level,
        server_header=False,
    )
    server = uvicorn.Server(config)
    state.server = server
    loader = threading.Thread(target=_loader, args=(settings, state), name="mldeploy-loader", daemon=True)
    state.on_started = loader.start

    _STOP.server = server
    if _STOP.requested:  # a stop that came while importing uvicorn
        server.should_exit = True
    if worker == 0:
        log(
            f"listening on port {settings.port}: GET / (liveness) answers now, GET /readyz once init() returned; "
            f"loading {settings.entry_script_path}"
        )
    server.run(sockets=[sock])
    if state.phase == FAILED:
        return state.exit_code or EXIT_BOOT_ERROR
    if loader.is_alive():
        log("stopped while init() was still running")
    return 0 if server.started else 1


def _exit_now(code: int) -> None:
    """Leave without waiting for a loader thread that may still be inside init()."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def supervise(settings: Settings) -> int:
    """Fork WORKER_COUNT workers on one listening socket; stop all when one exits; forward SIGTERM/SIGINT."""
    shared_sock: socket.socket | None = None
    if not settings.reuse_port:
        try:
            shared_sock = _bind(settings.host, settings.port, reuse_port=False)
        except OSError as ex:
            log(f"cannot listen on {settings.host}:{settings.port}: {ex}")
            return 1
    readiness = mmap.mmap(-1, max(settings.workers, 1))
    children: dict[int, int] = {}
    stopping = False
    exit_code = 0

    def stop(signum: int = signal.SIGTERM, frame: Any = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum if signum in (signal.SIGTERM, signal.SIGINT) else signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    for i in range(settings.workers):
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _STOP.install()
                sock = shared_sock
                if sock is None:
                    sock = _bind(settings.host, settings.port, reuse_port=True)
                code = serve(settings, sock, worker=i, shared=readiness)
            except BaseException as ex:
                log("worker crashed")
                log_exception(ex)
            finally:
                _exit_now(code)
        children[pid] = i
    if shared_sock is not None:
        shared_sock.close()  # the workers hold it; the port closes when the last of them exits
    if stopping:  # a signal came while forking: pass it on to the workers forked after it
        stop()
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid not in children:
            continue
        worker = children.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if not stopping:
            log(f"worker {worker + 1} (pid {pid}) exited with code {code}; stopping the other workers")
            exit_code = code if code > 0 else 1
            stop()
    return exit_code


def main() -> int:
    _line_buffer_stdio()
    try:
        settings = Settings.from_env()
    except SettingsError as ex:
        log(f"invalid setting: {ex}")
        log(f"exiting with code {EXIT_BOOT_ERROR}")
        return EXIT_BOOT_ERROR
    for var in AUTH_KEY_VARS:  # the keys stay in the settings only: the user's code has no need to see them
        os.environ.pop(var, None)
    if settings.auth:
        log(
            "key auth is on: /score, /swagger.json and /info need 'Authorization: Bearer <key>' ("
            + ", ".join(s.name for s in settings.auth)
            + ")"
        )
    if os.name == "posix" and os.geteuid() == 0:
        log("running as root: a scoring service should run as an unprivileged user (USER in the image)")
    if settings.workers > 1:
        return supervise(settings)
    _STOP.install()
    try:
        sock = _bind(settings.host, settings.port, reuse_port=False)
    except OSError as ex:
        log(f"cannot listen on {settings.host}:{settings.port}: {ex}")
        return 1
    code = serve(settings, sock)
    if any(t.name == "mldeploy-loader" and t.is_alive() for t in threading.enumerate()):
        _exit_now(code)  # stopped during init(): do not wait for it
    return code
