"""Ingest benchmark: wrk posting signed Shopify orders at `mactl serve`, against a bare 202.

    python bench/ingest.py                         # PostgreSQL and SQLite and bare
    python bench/ingest.py --backends sqlite --duration 5 --profile sqlite

wrk (Debian package `wrk`) drives the servers with a Lua script that cycles through
--orders distinct signed order webhooks (one customer each) and gives every request a
new X-Shopify-Webhook-Id, so every request is a new delivery (no duplicates). Servers:
`mactl serve` (uvicorn, --workers) on a fresh PostgreSQL database and on a temporary
SQLite file, and a bare FastAPI endpoint that reads the body and answers 202 under the
same uvicorn settings. Printed per target: req/s, p50/p99 (wrk --latency), non-2xx
answers, server CPU per request (the whole process tree, from /proc) and the ratio
real/bare. Goals (issue 10): ratio >= 0.4 and p99 < 50 ms. Both servers parse HTTP with
httptools (uvicorn's choice when it is installed, and it is: channels.asyncclient uses
it); under h11 the bare endpoint cost about twice the CPU per request. --profile runs py-spy on the
real server during that backend's run (--gil: samples of the thread holding the GIL,
i.e. Python CPU, not threads waiting) and prints the top functions.

Without REDIS_URL the enqueue goes to the in-process stub broker (nothing consumes it);
pass --redis-url to include the Redis round trip of a production request path.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from common import load_average
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-shopify-secret"
FIXTURE = ROOT / "tests" / "fixtures" / "shopify" / "orders_create.json"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LUA = r"""
local bodies, sigs = {}, {}
for line in io.lines("%(path)s") do
  local sig, body = line:match("^(%%S+)\t(.*)$")
  bodies[#bodies + 1] = body
  sigs[#sigs + 1] = sig
end
local threads, counter = 0, 0  -- `me` is a global: thread:set() writes globals
local run = "%(run)s-" .. os.time()  -- a warm-up and the measured run never share ids
function setup(thread)
  thread:set("me", threads)
  threads = threads + 1
end
function init(args)
  me = tonumber(me) or 0
end
request = function()
  counter = counter + 1
  local i = ((counter * 7 + me * 1000) %% #bodies) + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-Shopify-Topic"] = "orders/create",
    ["X-Shopify-Hmac-Sha256"] = sigs[i],
    ["X-Shopify-Webhook-Id"] = run .. "-" .. me .. "-" .. counter,
    ["X-Shopify-Shop-Domain"] = "bench.myshopify.com",
  }
  return wrk.format("POST", "/webhooks/shopify", headers, bodies[i])
end
"""


def bare_app() -> Any:
    """A FastAPI app whose webhook endpoint reads the body and answers 202."""
    app = FastAPI()

    @app.post("/webhooks/shopify")
    async def webhook(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"accepted": 1, "inbox_ids": [1], "duplicates": 0}, status_code=202)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def orders_file(directory: Path, count: int) -> Path:
    """`count` distinct signed orders, one customer each: `signature<TAB>body` per line."""
    sys.path.insert(0, str(ROOT))
    from automation.ingest.signatures import base64_hmac

    base = json.loads(FIXTURE.read_bytes())
    path = directory / "orders.tsv"
    with path.open("w") as out:
        for i in range(count):
            customer = {**base["customer"], "id": 700_000 + i,
                        "email": f"khach{i}@example.vn", "phone": f"+8491{i:07d}"}
            order = {**base, "id": 20_000_000 + i, "name": f"#B{i}", "currency": "VND",
                     "total_price": "1250000.00", "current_total_price": None,
                     "email": customer["email"], "phone": None, "customer": customer}
            body = json.dumps(order, separators=(",", ":"), ensure_ascii=False)
            out.write(f"{base64_hmac(SECRET, body.encode())}\t{body}\n")
    return path


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of `pid` and every live descendant (Linux /proc)."""
    stats: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo += [child for child, (parent, _) in stats.items() if parent == current]
    return total


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Poll /healthz until the server answers (broker errors still answer: any status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not become ready")


def start(kind: str, port: int, env: dict[str, str], workers: int, log: Path) -> subprocess.Popen[
    bytes
]:
    """`mactl serve` (real) or uvicorn on the bare app, same workers, logs to a file."""
    if kind == "bare":
        argv = [sys.executable, "-m", "uvicorn", "--factory", "ingest:bare_app",
                "--app-dir", str(ROOT / "bench"), "--port", str(port), "--workers",
                str(workers), "--log-level", "warning", "--no-access-log"]
    else:
        argv = [sys.executable, "-m", "admin_cli.main", "serve", "--port", str(port),
                "--workers", str(workers)]
    with log.open("ab") as out:
        return subprocess.Popen(argv, cwd=str(ROOT), env=env, stdout=out, stderr=out,
                                start_new_session=True)


def run_wrk(port: int, script: Path, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """One wrk run; req/s, p50/p99 in ms, requests and non-2xx answers."""
    out = subprocess.run(
        [args.wrk, f"-t{args.threads}", f"-c{args.connections}",
         f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}/webhooks/shopify"],
        capture_output=True, text=True, check=True,
    ).stdout

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": ms("50"), "p99_ms": ms("99"),
        "requests": int(requests.group(1)) if requests else 0,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def profile_top(raw: Path, limit: int = 15) -> list[tuple[str, float, float]]:
    """(function, own %, total %): the top own-time functions, then our own by total."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [re.sub(r":\d+\)$", ")",  # per function, not per line
                         re.sub(r" \(.*?/(site-packages|h7|lib/python3\.\d+)/", " (", f))
                  for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return []
    ours = [name for name, _ in total.most_common() if "(automation/" in name][:limit]
    return [(name, 100 * own[name] / samples, 100 * total[name] / samples)
            for name in dict.fromkeys([name for name, _ in own.most_common(limit)] + ours)]


def measure(kind: str, args: argparse.Namespace, env: dict[str, str], work: Path,
            profile: bool) -> dict[str, Any]:
    """Start a server, warm it up, run wrk, read the server's CPU, stop it."""
    port = free_port()
    script = work / f"{kind}.lua"
    script.write_text(LUA % {"path": work / "orders.tsv", "run": f"{kind}-{uuid.uuid4().hex[:6]}"})
    proc = start(kind, port, env, args.workers, work / f"{kind}.log")
    spy = None
    try:
        wait_ready(port, proc)
        run_wrk(port, script, args, args.warmup)
        before = tree_cpu(proc.pid)
        if profile:
            spy = subprocess.Popen(
                [args.py_spy, "record", "--pid", str(proc.pid), "--subprocesses", "--format",
                 "raw", "--output", str(work / "profile.txt"), "--duration",
                 str(int(args.duration)), "--rate", "200", "--nonblocking", "--gil"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        result = run_wrk(port, script, args, args.duration)
        cpu = tree_cpu(proc.pid) - before
        if spy is not None:
            spy.wait(60)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    result["server_cpu_ms_per_request"] = round(1000 * cpu / max(result["requests"], 1), 3)
    return result


def postgres_env(base: dict[str, str]) -> tuple[dict[str, str], str]:
    """A fresh migrated PostgreSQL database; returns the env and the database name."""
    import sqlalchemy as sa

    from automation.core.migrate import upgrade

    name = f"bench_ingest_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    return {**base, "DATABASE_URL": url}, name


def drop_postgres(name: str) -> None:
    """Drop the benchmark database."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    """Run the targets and print one line each plus the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="postgres,sqlite")
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--log-level", default="WARNING",
                        help="the server's LOG_LEVEL (INFO adds one JSON line per request)")
    parser.add_argument("--profile", default="", help="py-spy this backend's run (postgres)")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    parser.add_argument("--py-spy", default=str(Path(sys.executable).parent / "py-spy"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if not Path(args.wrk).exists():
        raise SystemExit("wrk not found: apt-get install wrk (or pass --wrk PATH)")
    base = {**os.environ, "SHOPIFY_WEBHOOK_SECRET": SECRET, "LOG_LEVEL": args.log_level,
            "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-secret-key-0123456789abcdef",
            "PYTHONPATH": str(ROOT)}
    base.pop("REDIS_URL", None)
    if args.redis_url:
        base["REDIS_URL"] = args.redis_url
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        orders_file(work, args.orders)
        results["bare"] = measure("bare", args, base, work, False)
        for backend in args.backends.split(","):
            if backend == "postgres":
                env, name = postgres_env(base)
                try:
                    results["postgres"] = measure("postgres", args, env, work,
                                                  args.profile == "postgres")
                finally:
                    drop_postgres(name)
            elif backend == "sqlite":
                env = {**base, "DATABASE_URL": f"sqlite:///{work / 'bench.db'}"}
                from automation.core.migrate import upgrade

                upgrade(env["DATABASE_URL"])
                results["sqlite"] = measure("sqlite", args, env, work, args.profile == "sqlite")
        profile = work / "profile.txt"
        top = profile_top(profile) if profile.exists() else []
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.orders} distinct "
          f"signed Shopify orders, uvicorn workers={args.workers}, "
          f"redis={'yes' if args.redis_url else 'no (stub broker)'}, LOG_LEVEL={args.log_level}, "
          f"{load_average()}")
    bare = results["bare"]["rps"]
    for name, r in results.items():
        ratio = r["rps"] / bare if bare else float("nan")
        print(f"{name:9s} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 "
              f"{r['p99_ms']:7.2f} ms  cpu/req {r['server_cpu_ms_per_request']:6.3f} ms  "
              f"non-2xx {r['non_2xx']}  ratio {ratio:.2f}"
              + (f"  socket errors: {r['socket_errors']}" if r["socket_errors"] else ""))
    if top:
        print(f"py-spy top (own %, total %), {args.profile} run:")
        for name, own, total in top:
            print(f"  {own:5.1f} {total:5.1f}  {name}")


if __name__ == "__main__":
    main()
