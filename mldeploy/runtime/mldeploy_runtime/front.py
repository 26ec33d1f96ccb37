"""The local target's front: a TCP relay on the service port that forwards each new connection
to the backend named in a pointer file.

A swap is one write of that file: connections opened afterwards reach the new version, open ones
finish on the old version, which is then stopped gracefully — no connection is refused on the
port at any time. Standard library only; runs as ``python3 front.py POINTER_FILE [PORT]`` in a
container of the base image.

The pointer file holds ``host:port`` (a network alias of the backend container). It is re-read
when its modification time changes, checked at most every 50 ms.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

CONNECT_TIMEOUT = 5.0
RETRY_SECONDS = 0.05
CHUNK = 64 * 1024


class Pointer:
    def __init__(self, path: str) -> None:
        self.path = path
        self.mtime = -1.0
        self.checked = 0.0
        self.target: tuple[str, int] | None = None

    def current(self, *, fresh: bool = False) -> tuple[str, int] | None:
        now = time.monotonic()
        if fresh or now - self.checked >= 0.05:
            self.checked = now
            try:
                mtime = os.stat(self.path).st_mtime
                if mtime != self.mtime:
                    with open(self.path) as handle:
                        host, _, port = handle.read().strip().rpartition(":")
                    self.target, self.mtime = (host, int(port)), mtime
            except (OSError, ValueError):
                pass  # keep the last good target
        return self.target


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other direction may still be answering
    except (ConnectionError, OSError):
        writer.close()


async def _connect(pointer: Pointer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the current backend; a refusal re-reads the pointer (a swap may be under way)."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    target = pointer.current()
    while True:
        try:
            if target is None:
                raise OSError("no backend named yet")
            return await asyncio.wait_for(asyncio.open_connection(*target), CONNECT_TIMEOUT)
        except (TimeoutError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise OSError(f"backend {target} unreachable: {exc}") from exc
        await asyncio.sleep(RETRY_SECONDS)
        target = pointer.current(fresh=True)


async def _serve(pointer: Pointer, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
    try:
        backend_r, backend_w = await _connect(pointer)
    except OSError as exc:
        print(f"mldeploy-front: {exc}", file=sys.stderr, flush=True)
        client_w.close()
        return
    upstream = asyncio.ensure_future(_pipe(client_r, backend_w))
    try:
        await _pipe(backend_r, client_w)  # the connection is over when the backend is done with it
    finally:
        upstream.cancel()
        backend_w.close()
        client_w.close()


async def main(path: str, port: int) -> None:
    pointer = Pointer(path)
    server = await asyncio.start_server(lambda r, w: _serve(pointer, r, w), "0.0.0.0", port, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"mldeploy-front: listening on {port}, backend from {path}", file=sys.stderr, flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5001))
