"""Ingest benchmark: signed Shopify order webhooks over loopback HTTP vs a bare 202 endpoint.

    python bench/ingest.py                       # temp SQLite (the embedded default)
    python bench/ingest.py --database-url postgresql+psycopg://postgres@127.0.0.1/bench

Each server runs in its own process (uvicorn, one worker) and the client fires
--requests webhooks at --concurrency with httpx (asyncio). The real app verifies the
HMAC, parses, upserts the contact and stores the event in one transaction, then
enqueues processing (in-process broker; nothing consumes it during the run). The bare
app reads the body and answers 202. Printed: throughput, p50/p99 and the ratio.
Targets: ratio >= 0.4 and p99 < 50 ms.

With a closed loop of N concurrent clients, mean latency = N / throughput (Little's
law), so p99 < 50 ms at concurrency 32 needs more than ~640 requests/s end to end.
Server and client CPU per request are printed too: unlike wall-clock numbers they
hardly move when the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-shopify-secret"
FIXTURE = ROOT / "tests" / "fixtures" / "shopify" / "orders_create.json"


def bare_app() -> Any:
    """A FastAPI app whose webhook endpoint reads the body and returns 202."""
    app = FastAPI()

    @app.post("/webhooks/shopify")
    async def webhook(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"accepted": 1, "event_ids": [1]}, status_code=202)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(kind: str, port: int, database_url: str) -> None:
    """Child process: run one app under uvicorn on loopback."""
    import uvicorn

    os.environ["DATABASE_URL"] = database_url
    os.environ["SHOPIFY_WEBHOOK_SECRET"] = SECRET
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-0123456789abcdef")
    sys.path.insert(0, str(ROOT))
    if kind == "real":
        import automation.contacts.orders  # noqa: F401
        from automation.ingest.app import create_app

        app = create_app()
    else:
        app = bare_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bodies(count: int, run: str, customers: int) -> list[tuple[bytes, dict[str, str]]]:
    """Signed, distinct order webhooks (unique order and webhook ids; a pool of customers)."""
    sys.path.insert(0, str(ROOT))
    from automation.ingest.signatures import base64_hmac

    base = json.loads(FIXTURE.read_bytes())
    result = []
    for i in range(count):
        order = dict(base)
        customer = dict(base["customer"])
        n = i % customers
        customer.update(id=900000 + n, email=f"bench{n}.{run}@example.vn")
        order.update(id=10_000_000 + i, name=f"#B{i}", currency="VND", total_price="1250000.00",
                     email=customer["email"], customer=customer)
        body = json.dumps(order).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": base64_hmac(SECRET, body),
            "X-Shopify-Webhook-Id": f"{run}-{i}",
            "X-Shopify-Shop-Domain": "bench.myshopify.com",
        }
        result.append((body, headers))
    return result


async def fire(
    url: str, work: list[tuple[bytes, dict[str, str]]], concurrency: int, limit_s: float
) -> tuple[list[float], float, dict[int | str, int]]:
    """POST every body with `concurrency` workers; latencies (s), wall time, status counts."""
    import httpx

    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    errors = statuses
    queue = iter(work)
    deadline = time.perf_counter() + limit_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            for body, headers in queue:
                if time.perf_counter() > deadline:
                    return
                started = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:  # counted, not fatal: the run reports it
                    name = type(exc).__name__
                    errors[name] = errors.get(name, 0) + 1
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, wall, statuses


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0.0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Poll /healthz until the child answers."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with code {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not become ready")


def measure(kind: str, args: argparse.Namespace, database_url: str, run: str) -> dict[str, Any]:
    """Start the server, warm up, fire the requests, stop the server."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port),
         "--database-url", database_url],
        cwd=str(ROOT),
    )
    try:
        wait_ready(port, proc)
        url = f"http://127.0.0.1:{port}/webhooks/shopify"
        warm = bodies(args.warmup, f"{run}-{kind}-warm", args.customers)
        asyncio.run(fire(url, warm, args.concurrency, args.time_limit))
        work = bodies(args.requests, f"{run}-{kind}", args.customers)
        cpu_before, client_before = cpu_seconds(proc.pid), time.process_time()
        latencies, wall, statuses = asyncio.run(
            fire(url, work, args.concurrency, args.time_limit)
        )
        cpu = cpu_seconds(proc.pid) - cpu_before
        client_cpu = time.process_time() - client_before
    finally:
        proc.terminate()
        proc.wait(10)
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "seconds": round(wall, 3),
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "server_cpu_ms_per_request": round(cpu / max(len(latencies), 1) * 1000, 3),
        "client_cpu_ms_per_request": round(client_cpu / max(len(latencies), 1) * 1000, 3),
        "statuses": statuses,
    }


def main() -> None:
    """Parse arguments; run both servers in turn and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--customers", type=int, default=500, help="distinct buyers")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--database-url", default=None, help="default: a temp SQLite file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--serve", choices=["real", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.database_url)
        return
    sys.path.insert(0, str(ROOT))
    from automation.core.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(database_url)
        run = f"r{int(time.time())}"
        real = measure("real", args, database_url, run)
        bare = measure("bare", args, database_url, run)
    ratio = real["rps"] / bare["rps"] if bare["rps"] else 0.0
    cpu_ratio = (
        bare["server_cpu_ms_per_request"] / real["server_cpu_ms_per_request"]
        if real["server_cpu_ms_per_request"]
        else 0.0
    )
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    report = {
        "backend": backend, "concurrency": args.concurrency, "real": real, "bare": bare,
        "ratio": round(ratio, 3), "cpu_ratio": round(cpu_ratio, 3), "target_ratio": 0.4,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None, "target_p99_ms": 50,
        "ok": ratio >= 0.4 and real["p99_ms"] < 50,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"ingest bench: {backend}, concurrency {args.concurrency}")
    for name, row in (("webhook (real)", real), ("bare 202", bare)):
        print(f"  {name:15} {row['requests']:6d} req  {row['rps']:8.1f} req/s  "
              f"p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  "
              f"CPU/req server {row['server_cpu_ms_per_request']:.2f} ms "
              f"client {row['client_cpu_ms_per_request']:.2f} ms  {row['statuses']}")
    print(f"  ratio {ratio:.2f} (target >= 0.40), p99 {real['p99_ms']:.1f} ms (target < 50)"
          f"  -> {'OK' if report['ok'] else 'MISSED'}")
    print(f"  server CPU ratio (bare/real per request) {cpu_ratio:.2f}; "
          f"load average {report['load_average']} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
