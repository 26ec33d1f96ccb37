"""What one hostile client does to a scoring server: mldeploy's runtime beside a bare uvicorn app.

Both serve the same scoring script (``bench/runtime/score.py``) on 127.0.0.1 with the project's
own interpreter; ``bare`` is uvicorn with its stock httptools protocol (``bench/runtime/bare_app.py``),
``ours`` is ``python -m mldeploy_runtime`` with its request limits. Per server and attack, while a
prober calls ``GET /`` every 50 ms:

* ``header`` — one request with a 256 MiB header: the answer (431 or none), seconds to it, the
  server's peak RSS growth, and health p50/p99 during the attack;
* ``slowloris`` — 50 connections sending a header line every 0.5 s: how long they are kept, and
  health p50/p99 meanwhile;
* ``deep-get`` — ``GET /score?data=[[[...]]]`` nested 5000 deep: the status and content type (ours
  only: the bare app has no GET scoring).

    .venv/bin/python bench/security_bench.py [--markdown]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "bench" / "runtime"
RUNTIME = REPO / "mldeploy" / "runtime"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    total = 0
    for candidate in [pid, *_children(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{candidate}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def start(kind: str, model_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "AZUREML_MODEL_DIR": str(model_dir / "logreg")}
    if kind == "ours":
        env.update(
            PYTHONPATH=f"{RUNTIME}:{RUNTIME / 'compat'}",
            AML_APP_ROOT=str(HERE),
            AZUREML_ENTRY_SCRIPT="score.py",
            MLDEPLOY_PORT=str(port),
            MLDEPLOY_HOST="127.0.0.1",
        )
        command = [sys.executable, "-m", "mldeploy_runtime"]
    else:
        env.update(PYTHONPATH=str(HERE), BENCH_SCORE=str(HERE / "score.py"))
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("POST", "/score", body='{"data": [[5.1, 3.5, 1.4, 0.2]]}')
            if conn.getresponse().status == 200:
                return proc, port
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{kind} did not start")


class Prober(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.latencies, self.failures, self.stop = port, [], 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/")
                ok = conn.getresponse().status == 200
                conn.close()
            except (OSError, http.client.HTTPException):
                ok = False
            if ok:
                self.latencies.append((time.perf_counter() - started) * 1000)
            else:
                self.failures += 1
            self.stop.wait(0.05)

    def summary(self) -> str:
        if not self.latencies:
            return f"no answer ({self.failures} failed)"
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return f"p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms, {self.failures} failed"


def header_attack(proc: subprocess.Popen[bytes], port: int) -> dict[str, str]:
    before, peak = rss_kib(proc.pid), 0
    prober = Prober(port)
    prober.start()
    started = time.monotonic()
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        chunk = b"a" * (1 << 20)
        with contextlib.suppress(OSError):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
            for _ in range(256):
                sock.sendall(chunk)
                peak = max(peak, rss_kib(proc.pid))
            sock.sendall(b"\r\n\r\n")
        with contextlib.suppress(OSError):
            answer = sock.recv(200)
    seconds = time.monotonic() - started
    peak = max(peak, rss_kib(proc.pid))
    prober.stop.set()
    prober.join()
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "none"
    return {
        "answer": status,
        "seconds": f"{seconds:.1f}",
        "peak RSS growth": f"{(peak - before) / 1024:.0f} MiB",
        "health meanwhile": prober.summary(),
    }


def slowloris(port: int, connections: int = 50, duration: float = 20.0) -> dict[str, str]:
    prober = Prober(port)
    prober.start()
    kept: list[float] = []

    def crawl() -> None:
        started = time.monotonic()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            for i in range(int(duration / 0.5)):
                sock.sendall(b"X-Slow-%d: 1\r\n" % i)
                time.sleep(0.5)
        kept.append(time.monotonic() - started)

    attackers = [threading.Thread(target=crawl) for _ in range(connections)]
    for attacker in attackers:
        attacker.start()
    for attacker in attackers:
        attacker.join()
    prober.stop.set()
    prober.join()
    return {
        "connections kept": f"{statistics.median(kept):.1f} s (of {duration:g} s tried)",
        "health meanwhile": prober.summary(),
    }


def deep_get(port: int) -> dict[str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/score?data=" + "[" * 5000 + "]" * 5000)
    response = conn.getresponse()
    response.read()
    return {"status": str(response.status), "content type": response.getheader("content-type") or "-"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        subprocess.run([sys.executable, str(HERE / "train.py"), str(models)], check=True, capture_output=True)
        rows: list[tuple[str, str, dict[str, str]]] = []
        for kind in ("bare", "ours"):
            proc, port = start(kind, models)
            try:
                rows.append((kind, "header", header_attack(proc, port)))
                rows.append((kind, "slowloris", slowloris(port)))
                if kind == "ours":  # bare answers any GET with "Healthy": nothing to compare
                    rows.append((kind, "deep-get", deep_get(port)))
            finally:
                proc.terminate()
                proc.wait(timeout=20)
    if args.markdown:
        print("| server | attack | result |\n|---|---|---|")
        for kind, attack, result in rows:
            print(f"| {kind} | {attack} | {'; '.join(f'{k}: {v}' for k, v in result.items())} |")
    else:
        for kind, attack, result in rows:
            print(f"{kind:5} {attack:10} " + "; ".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
