"""Scoring runtime benchmark: the classic AzureML server, mldeploy's runtime and a bare ASGI reference, side by side.

Every server runs the same scoring script (``bench/runtime/score.py``, an unchanged classic ``run(raw_data)``)
with the same scikit-learn models (LogisticRegression and a 50-tree RandomForest trained on iris), on
127.0.0.1 only:

* ``classic`` — azureml-inference-server-http 1.5.1 (gunicorn + Flask), started through its own CLI;
* ``ours`` — ``python -m mldeploy_runtime`` from ``mldeploy/runtime/`` with the pins of its requirements.txt;
* ``bare`` — a minimal ASGI app on the same uvicorn/uvloop/httptools calling ``run()`` inline
  (``bench/runtime/bare_app.py``): the ceiling for our runtime.

Each at 1 and 2 workers. Load: ``wrk -t1 -c8 -d15s --latency`` POSTing two iris rows, median of 3 rounds;
the rounds are interleaved across servers, in an order that rotates every round, so that drift on the shared
machine hits all of them alike. Also measured: RSS (and PSS) of the whole process tree after the load, and the
time from process start to the first 200 on ``/score`` next to the script's own load + init() time (reported by
the script), for the "≤ 1 s plus init()" target.

The benchmark creates what it needs: two virtual environments under ``~/.mldeploy/bench-venvs/`` (the classic
server with its dependencies, and our runtime's pinned requirements), both with the scikit-learn, numpy and
joblib versions of the interpreter running this script, so the project's own environment is untouched.

    .venv/bin/python bench/runtime_bench.py [--duration 15] [--rounds 3] [--markdown]
    .venv/bin/python bench/runtime_bench.py --duration 3 --rounds 1      # quick look
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "bench" / "runtime"
RUNTIME = REPO / "mldeploy" / "runtime"
VENVS = Path(os.environ.get("MLDEPLOY_BENCH_VENVS", Path.home() / ".mldeploy" / "bench-venvs"))
CLASSIC_PIN = "azureml-inference-server-http==1.5.1"
BODY = json.dumps({"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]})
MODELS = {"logreg": "LogisticRegression", "rf": "RandomForest(50)"}
SERVERS = ("classic", "ours", "bare")
# targets of the issue: ours / classic req/s at equal workers
RATIO_TARGET = {"logreg": 2.5, "rf": 1.8}
BARE_TOLERANCE = 0.10
START_OVERHEAD_S = 1.0


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- environments --------------------------------------------------------------------------------------------


def shared_pins() -> list[str]:
    """The model stack of this interpreter, pinned, so every server unpickles the same models."""
    pins = []
    for name in ("scikit-learn", "numpy", "scipy", "joblib"):
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit(f"{name} is not installed in {sys.executable}; run with the project's .venv") from None
    return pins


def ensure_venv(name: str, requirements: list[str]) -> Path:
    """A virtual environment with exactly ``requirements``, created once and reused (keyed by their hash)."""
    digest = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:10]
    path = VENVS / f"{name}-{digest}"
    marker = path / ".complete"
    if marker.exists():
        return path
    log(f"creating {path} ({', '.join(requirements)})")
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    req_file = path / "bench-requirements.txt"
    req_file.write_text("\n".join(requirements) + "\n")
    subprocess.run(
        [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(req_file)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    marker.write_text("\n".join(requirements) + "\n")
    return path


def runtime_requirements() -> list[str]:
    lines = (RUNTIME / "requirements.txt").read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


# -- servers -------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    kind: str
    model: str
    workers: int
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    start_s: float = float("nan")
    load_init_s: float = float("nan")
    rps: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rss_mb: float = float("nan")
    pss_mb: float = float("nan")

    @property
    def label(self) -> str:
        return f"{self.kind} {self.workers}w"


def command(
    kind: str, workers: int, port: int, model_dir: Path, venvs: dict[str, Path], ours_env: dict[str, str]
) -> tuple[list[str], dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_", "MLDEPLOY_", "PYTHON"))}
    env.pop("WORKER_COUNT", None)
    env["AZUREML_MODEL_DIR"] = str(model_dir)
    score = HERE / "score.py"
    if kind == "classic":
        python = venvs["classic"] / "bin" / "python"
        env["AML_APP_ROOT"] = str(HERE)
        cmd = [
            str(python),
            str(HERE / "classic_server.py"),
            "--entry_script",
            str(score),
            "--model_dir",
            str(model_dir),
            "--port",
            str(port),
            "--worker_count",
            str(workers),
        ]
    elif kind == "ours":
        python = venvs["runtime"] / "bin" / "python"
        env.update(
            {
                "PYTHONPATH": f"{RUNTIME}:{RUNTIME / 'compat'}",  # the image: the shim last (a .pth)
                "AML_APP_ROOT": str(HERE),
                "AZUREML_ENTRY_SCRIPT": "score.py",
                "MLDEPLOY_HOST": "127.0.0.1",
                "MLDEPLOY_PORT": str(port),
                "WORKER_COUNT": str(workers),
                **ours_env,
            }
        )
        cmd = [str(python), "-m", "mldeploy_runtime"]
    else:
        python = venvs["runtime"] / "bin" / "python"
        env["BENCH_SCORE"] = str(score)
        env["PYTHONPATH"] = str(HERE)
        cmd = [str(python), "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
        if workers > 1:
            cmd += ["--workers", str(workers)]
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return cmd, env


def post(port: int, timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/score", BODY, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def start(
    kind: str,
    model: str,
    workers: int,
    model_dir: Path,
    venvs: dict[str, Path],
    logs: Path,
    ours_env: dict[str, str],
    timeout: float = 60,
) -> Server:
    port = free_port()
    cmd, env = command(kind, workers, port, model_dir, venvs, ours_env)
    log_path = logs / f"{model}-{kind}-{workers}w.log"
    with open(log_path, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(HERE))
    server = Server(kind, model, workers, port, proc, log_path)
    deadline = started + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{server.label} ({model}) exited with {proc.returncode}; see {log_path}")
        try:
            if post(port, timeout=max(0.1, deadline - time.perf_counter())) == 200:
                server.start_s = time.perf_counter() - started
                break
        except OSError:
            pass
        if time.perf_counter() > deadline:
            stop(server)
            raise SystemExit(f"{server.label} ({model}) did not answer 200 within {timeout} s; see {log_path}")
        time.sleep(0.005)
    found = re.findall(r"bench: load\+init seconds=([0-9.]+)", log_path.read_text(errors="replace"))
    if found:
        server.load_init_s = float(found[0])  # the first worker that came up answered the first 200
    return server


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def memory_mb(pid: int) -> tuple[float, float]:
    """(sum of RSS, sum of PSS) of the process and all its descendants, in MB."""
    rss = pss = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
    return rss / 1024, pss / 1024


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            for pid in reversed(process_tree(server.proc.pid)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            server.proc.wait(timeout=10)


# -- load ----------------------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk(port: int, seconds: float, lua: Path, connections: int, threads: int) -> tuple[float, float, str]:
    """(req/s, p99 ms, problems) of one wrk run."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(lua)]
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}/score"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    p99_match = re.search(r"^\s+99%\s+([0-9.]+)(us|ms|s|m)\s*$", out, re.M)
    p99 = float(p99_match.group(1)) * _UNITS[p99_match.group(2)] if p99_match else float("nan")
    problems = []
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        problems.append(f"{non2xx.group(1)} non-2xx")
    sock = re.search(r"Socket errors: (.*)", out)
    if sock:
        problems.append(f"socket errors: {sock.group(1)}")
    return rps, p99, "; ".join(problems)


def write_lua(folder: Path) -> Path:
    lua = folder / "post.lua"
    lua.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(BODY)}\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    return lua


# -- report --------------------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 0) -> str:
    return "—" if value != value else f"{value:,.{digits}f}"


def table(rows: list[list[str]], header: list[str], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def report(servers: list[Server], workers: list[int], markdown: bool) -> tuple[str, bool]:
    by = {(s.model, s.kind, s.workers): s for s in servers}
    header = ["model", "server", "req/s", "p99 ms", "RSS MB", "PSS MB", "start→200 s", "load+init s", "× classic"]
    header += ["× bare", "rounds (req/s)"]
    rows = []
    for model in MODELS:
        for kind in SERVERS:
            for w in workers:
                s = by.get((model, kind, w))
                if s is None:
                    continue
                classic, bare = by.get((model, "classic", w)), by.get((model, "bare", w))
                rows.append(
                    [
                        MODELS[model],
                        s.label,
                        fmt(med(s.rps)),
                        fmt(med(s.p99_ms), 1),
                        fmt(s.rss_mb),
                        fmt(s.pss_mb),
                        fmt(s.start_s, 2),
                        fmt(s.load_init_s, 2),
                        fmt(med(s.rps) / med(classic.rps), 2) if classic else "—",
                        fmt(med(s.rps) / med(bare.rps), 2) if bare else "—",
                        " / ".join(fmt(r) for r in s.rps) + (f" ({'; '.join(s.errors)})" if s.errors else ""),
                    ]
                )
    text = table(rows, header, markdown)

    checks: list[list[str]] = []
    all_ok = True

    def check(what: str, measured: str, target: str, ok: bool) -> None:
        nonlocal all_ok
        all_ok &= ok
        checks.append([what, measured, target, "yes" if ok else "NO"])

    for w in workers:
        for model in MODELS:
            classic, ours, bare = (by.get((model, k, w)) for k in SERVERS)
            if ours is None:
                continue
            tag = f"{MODELS[model]}, {w} worker{'s' if w > 1 else ''}"
            if classic:
                ratio = med(ours.rps) / med(classic.rps)
                target = RATIO_TARGET[model]
                check(f"req/s vs classic, {tag}", f"{ratio:.2f}×", f"≥ {target}×", ratio >= target)
                check(
                    f"p99 vs classic, {tag}",
                    f"{med(ours.p99_ms):.1f} vs {med(classic.p99_ms):.1f} ms",
                    "≤ classic",
                    med(ours.p99_ms) <= med(classic.p99_ms),
                )
                check(
                    f"RSS vs classic, {tag}",
                    f"{ours.rss_mb:.0f} vs {classic.rss_mb:.0f} MB",
                    "≤ classic",
                    ours.rss_mb <= classic.rss_mb,
                )
            if bare:
                ratio = med(ours.rps) / med(bare.rps)
                check(f"req/s vs bare ASGI, {tag}", f"{ratio:.2f}×", f"≥ {1 - BARE_TOLERANCE:.2f}×", ratio >= 0.9)
            overhead = ours.start_s - ours.load_init_s
            check(
                f"start→first 200 minus load+init, {tag}",
                f"{overhead:.2f} s ({ours.start_s:.2f} − {ours.load_init_s:.2f})",
                f"≤ {START_OVERHEAD_S:g} s",
                overhead <= START_OVERHEAD_S,
            )
    text += "\n\n" + table(checks, ["target", "measured", "target", "met"], markdown)
    return text, all_ok


# -- main ----------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per wrk round (default 15)")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per server; the median is reported")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed wrk seconds before the rounds")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: logreg,rf")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated: classic,ours,bare")
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    parser.add_argument("--keep-logs", action="store_true", help="keep the server logs (printed path)")
    parser.add_argument(
        "--ours-env", action="append", default=[], metavar="NAME=VALUE", help="extra environment for our runtime"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    workers = [int(w) for w in args.workers.split(",")]
    models = [m for m in args.models.split(",") if m]
    kinds = [k for k in args.servers.split(",") if k]
    for m in models:
        if m not in MODELS:
            raise SystemExit(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    for k in kinds:
        if k not in SERVERS:
            raise SystemExit(f"unknown server {k!r}; choose from {', '.join(SERVERS)}")

    ours_env = dict(item.split("=", 1) for item in args.ours_env)
    pins = shared_pins()
    venvs = {"runtime": ensure_venv("runtime", [*runtime_requirements(), *pins])}
    if "classic" in kinds:
        venvs["classic"] = ensure_venv("classic", [CLASSIC_PIN, *pins])

    work = Path(tempfile.mkdtemp(prefix="mldeploy-runtime-bench-"))
    logs = work / "logs"
    logs.mkdir()
    subprocess.run([str(venvs["runtime"] / "bin" / "python"), str(HERE / "train.py"), str(work / "models")], check=True)
    lua = write_lua(work)
    log(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency, {args.rounds} rounds; "
        f"workers {workers}; logs in {logs}"
    )

    results: list[Server] = []
    try:
        for model in models:
            running: list[Server] = []
            try:
                for kind in kinds:
                    for w in workers:
                        server = start(kind, model, w, work / "models" / model, venvs, logs, ours_env)
                        running.append(server)
                        log(
                            f"{model}: {server.label} up in {server.start_s:.2f} s (load+init {server.load_init_s:.2f})"
                        )
                        if args.warmup > 0:
                            wrk(server.port, args.warmup, lua, args.connections, args.threads)
                for r in range(args.rounds):
                    # rotate the order every round: no server is always first after a quiet pause
                    shift = r % len(running)
                    for server in running[shift:] + running[:shift]:
                        rps, p99, problems = wrk(server.port, args.duration, lua, args.connections, args.threads)
                        server.rps.append(rps)
                        server.p99_ms.append(p99)
                        if problems:
                            server.errors.append(problems)
                        log(f"{model} round {r + 1}: {server.label}: {rps:,.0f} req/s, p99 {p99:.1f} ms {problems}")
                for server in running:
                    server.rss_mb, server.pss_mb = memory_mb(server.proc.pid)
            finally:
                for server in running:
                    stop(server)
            results += running
    finally:
        if not args.keep_logs:
            shutil.rmtree(work, ignore_errors=True)

    text, ok = report(results, workers, args.markdown)
    command_line = " ".join(["python", "bench/runtime_bench.py", *sys.argv[1:]])
    print(
        f"{command_line}\n(wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency, "
        f"median of {args.rounds}; python {sys.version.split()[0]}; {', '.join(pins)})\n"
    )
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
