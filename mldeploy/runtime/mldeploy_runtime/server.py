"""Process entry: load the script, call init(), then listen and serve with uvicorn.

The socket is bound only after init() returned, so a connection that succeeds means the model is loaded
(``GET /`` == ready). With ``WORKER_COUNT`` > 1 the parent forks that many workers; each loads the script,
calls
init() and binds its own ``SO_REUSEPORT`` socket (the kernel spreads connections over the listening workers).
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import sys
import time
from typing import Any

from . import __version__
from .logs import log, log_exception, log_model_dir, missing_filenames
from .settings import Settings, SettingsError
from .user_script import ScriptError, ScriptImportError, UserScript

EXIT_BOOT_ERROR = 3  # gunicorn's (and the classic server's) "boot error" code


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
    if settings.debug_wait:
        log("waiting for the debugger to attach (MLDEPLOY_DEBUG_WAIT=true)")
        debugpy.wait_for_client()


def _load_and_init(settings: Settings) -> tuple[UserScript, float, float] | int:
    """(script, load_seconds, init_seconds) or the exit code after logging why it failed."""
    script = UserScript(settings.entry_script_path, settings.app_root, settings.source_dir)
    t0 = time.perf_counter()
    try:
        script.load()
    except ScriptImportError as ex:
        cause = ex.__cause__ or ex
        log(f"entry script {settings.entry_script_path} failed to import")
        log_exception(cause)
        for name in missing_filenames(cause):
            log(f"init() could not find {name}")
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
        for name in missing_filenames(ex):
            log(f"init() could not find {name}")
        log_model_dir(settings.model_dir)
        log(f"exiting with code {EXIT_BOOT_ERROR}")
        return EXIT_BOOT_ERROR
    return script, t1 - t0, time.perf_counter() - t1


def serve(settings: Settings, reuse_port: bool = False, worker: int = 0) -> int:
    import uvicorn

    from .app import make_app

    if worker == 0:
        _start_debugger(settings)
    loaded = _load_and_init(settings)
    if isinstance(loaded, int):
        return loaded
    script, load_s, init_s = loaded
    info: dict[str, Any] = {
        "runtime": "mldeploy-runtime",
        "runtime_version": __version__,
        "python": platform.python_version(),
        "pid": os.getpid(),
        "worker": worker,
        "workers": settings.workers,
        "entry_script": settings.entry_script_path,
        "model_dir": settings.model_dir,
        "input_mode": script.mode,
        "load_seconds": round(load_s, 6),
        "init_seconds": round(init_s, 6),
        "max_body_bytes": settings.max_body_bytes,
        "scoring_timeout_ms": settings.scoring_timeout_ms,
        "debug": settings.debug,
    }
    app = make_app(script, settings, info)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "auto"
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "auto"
    config = uvicorn.Config(
        app,
        loop=loop,
        http=http,
        ws="none",
        lifespan="off",
        interface="asgi3",
        access_log=settings.access_log,
        log_level=settings.log_level,
        server_header=False,
    )
    server = uvicorn.Server(config)

    def stop(signum: int, frame: Any) -> None:
        # Before uvicorn installs its own handlers this makes it exit right after startup; after its graceful
        # shutdown uvicorn re-raises the signal, which lands here again, so a requested stop exits 0.
        server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        sock = _bind(settings.host, settings.port, reuse_port)
    except OSError as ex:
        log(f"cannot listen on {settings.host}:{settings.port}: {ex}")
        return 1
    log(f"init() done in {init_s:.3f}s; serving on port {settings.port}")
    if settings.workers > 1:
        log(f"worker {worker + 1} of {settings.workers}, pid {os.getpid()}")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if server.started else 1


def supervise(settings: Settings) -> int:
    """Fork WORKER_COUNT workers; stop all when one exits; forward SIGTERM/SIGINT."""
    children: dict[int, int] = {}
    stopping = False
    exit_code = 0

    def stop(signum: int = signal.SIGTERM, frame: Any = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum if signum in (signal.SIGTERM, signal.SIGINT) else signal.SIGTERM)

    for i in range(settings.workers):
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = serve(settings, reuse_port=True, worker=i)
            except BaseException as ex:
                log("worker crashed")
                log_exception(ex)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = i
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
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
        return EXIT_BOOT_ERROR
    if settings.workers > 1:
        return supervise(settings)
    return serve(settings)
