"""One anonymous client must never stall or crash the service for the others: oversized and slow
requests are refused in the HTTP layer (431, 414, 408) while health checks stay green, and every
refusal answers in the JSON error contract. A real server process (same harness as test_runtime.py).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.unit.test_runtime import FIXTURES, StartServer, start_server

__all__ = ["start_server"]

pytestmark = pytest.mark.timeout(90)
FAST = {"MLDEPLOY_HEADER_TIMEOUT_SECONDS": "2", "MLDEPLOY_BODY_TIMEOUT_SECONDS": "2"}


def _raw(port: int, payload: bytes, *, timeout: float = 10) -> bytes:
    """Send bytes as they are and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(payload)  # the server may refuse before we finish sending: read its answer
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def _status_and_json(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _ready(s: object) -> None:
    deadline = time.monotonic() + 20
    while s.request("GET", "/readyz")[0] != 200:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the server did not get ready"
        time.sleep(0.05)


def test_a_huge_header_is_refused_early_and_memory_stays_flat(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw")
    _ready(s)
    before = _rss_kib(s.proc.pid)
    header = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (64 * 1024 * 1024) + b"\r\n\r\n"
    status, body = _status_and_json(_raw(s.port, header))
    assert status == 431 and "headers are larger" in str(body["message"])
    assert _rss_kib(s.proc.pid) - before < 20 * 1024, "the header was not buffered"
    assert s.request("GET", "/readyz")[0] == 200


def test_too_many_headers_and_a_too_long_url_are_refused(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw")
    many = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(150)) + b"\r\n"
    status, body = _status_and_json(_raw(s.port, many))
    assert status == 431 and "more than 100 headers" in str(body["message"])
    long_url = b"GET /score?data=" + b"1" * (32 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _status_and_json(_raw(s.port, long_url))[0] == 414


def test_slow_headers_time_out_while_others_are_served(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw", env=FAST)
    results: list[bytes] = []

    def slowloris() -> None:
        with socket.create_connection(("127.0.0.1", s.port), timeout=20) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n")
            try:
                for i in range(30):  # a header line every 0.2 s: never finishes within the limit
                    sock.sendall(b"X-Slow-%d: 1\r\n" % i)
                    time.sleep(0.2)
            except OSError:
                pass
            results.append(sock.recv(65536))

    attackers = [threading.Thread(target=slowloris) for _ in range(20)]
    started = time.monotonic()
    for attacker in attackers:
        attacker.start()
    _ready(s)
    health = [s.request("GET", "/readyz")[0] for _ in range(10)]  # served while 20 connections crawl
    for attacker in attackers:
        attacker.join()
    assert health == [200] * 10
    assert len(results) == 20 and all(r.startswith(b"HTTP/1.1 408") for r in results)
    assert time.monotonic() - started < 10, "the slow requests were cut off at the header timeout"


def test_a_silent_connection_is_closed_after_the_header_timeout(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw", env=FAST)
    started = time.monotonic()
    answer = _raw(s.port, b"", timeout=15)
    assert answer.startswith(b"HTTP/1.1 408") and 1.5 < time.monotonic() - started < 8


def test_a_slow_body_times_out(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw", env=FAST)
    with socket.create_connection(("127.0.0.1", s.port), timeout=15) as sock:
        sock.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        answer = sock.recv(65536)
    status, body = _status_and_json(answer)
    assert status == 408 and "body" in str(body["message"])


def test_a_large_legitimate_post_still_passes(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw")
    body = json.dumps({"data": [[1.0] * 1000] * 100}).encode()  # ~500 KB, one write with its headers
    status, _, answer = s.post(body)
    assert status == 200, answer


def test_deep_json_in_a_get_is_refused_like_in_a_post(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw")
    deep = "[" * 4000 + "]" * 4000
    for method, path, payload in (("GET", f"/score?data={deep}", None), ("POST", "/score", deep.encode())):
        status, headers, body = s.request(method, path, payload, {"Content-Type": "application/json"})
        assert status == 400, (method, body[:200])
        assert headers["content-type"] == "application/json" and "nested deeper" in json.loads(body)["message"]
