"""Runtime entry points: `mactl serve`, `mactl worker`, `mactl scheduler`, `mactl run`."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import typer

from admin_cli.output import fail, load_settings, print_json, user_errors

if TYPE_CHECKING:
    from automation.core.clock import FrozenClock
    from automation.core.config import Settings

APP_FACTORY = "automation.ingest.app:create_app"
WORKER_MODULE = "automation.runtime.worker"
log = logging.getLogger("mactl")
app = typer.Typer()


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 in containers)."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="Uvicorn worker processes."),
    access_log: bool = typer.Option(False, help="Log every request (contains client IPs)."),
) -> None:
    """Run the HTTP API (webhooks, callbacks, tracking, /healthz, /metrics)."""
    import uvicorn

    from automation.core.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=access_log,
        proxy_headers=True,
    )


@app.command("worker")
def worker(
    processes: int | None = typer.Option(
        None, min=1, help="Worker processes (default: WORKER_PROCESSES)."
    ),
    threads: int | None = typer.Option(
        None, min=1, help="Threads per process (default: WORKER_THREADS)."
    ),
    queues: list[str] = typer.Option(  # noqa: B006
        [], "--queue", "-Q", metavar="QUEUE", help="Only consume these queues (repeatable)."
    ),
) -> None:
    """Run Dramatiq worker processes against Redis (needs REDIS_URL); SIGTERM lets work in
    flight finish (WORKER_SHUTDOWN_SECONDS) and returns queued work to Redis."""
    settings = load_settings()
    if not settings.redis_url:
        fail(
            "REDIS_URL is not set: `mactl worker` consumes from Redis; "
            "set REDIS_URL=redis://host:6379/0, or use `mactl run` for the all-in-one process"
        )
    _ping_redis(settings.redis_url)
    argv = [
        sys.executable,
        "-m",
        "automation.runtime.launch",
        WORKER_MODULE,
        "--processes",
        str(processes or settings.worker_processes),
        "--threads",
        str(threads or settings.worker_threads),
        "--worker-shutdown-timeout",
        str(settings.worker_shutdown_seconds * 1000),
    ]
    if queues:
        argv += ["--queues", *queues]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def _ping_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001 - any failure is reported as one line
        fail(f"REDIS_URL: Redis is not reachable at {_hide_password(url)}: {exc}")


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest


@app.command("scheduler")
def scheduler(
    interval: float = typer.Option(30.0, min=0.1, help="Seconds between passes."),
    once: bool = typer.Option(False, "--once", help="Run one pass, print its counts, exit."),
    at: str | None = typer.Option(
        None,
        "--now",
        help="Pretend it is this ISO-8601 time (no offset = DEFAULT_TIMEZONE); "
        "the simulated clock then moves by --interval per pass.",
    ),
) -> None:
    """Run the periodic pass: due enrollment steps, abandoned carts, stale outbox rows."""
    from automation.core import clock
    from automation.core.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    frozen: clock.FrozenClock | None = None
    if at is not None:
        frozen = clock.FrozenClock(parse_time(at, settings.default_timezone))
    previous = clock.install(frozen) if frozen is not None else None
    try:
        _run_scheduler(settings, interval, once, frozen)
    finally:
        if previous is not None:  # in-process callers (tests) get their clock back
            clock.install(previous)


def _run_scheduler(
    settings: Settings, interval: float, once: bool, frozen: FrozenClock | None
) -> None:
    from automation.core import clock

    with user_errors():
        from automation.core.db import session_factory
        from automation.runtime.broker import configure_broker
        from automation.runtime.scheduler import run_pass

        configure_broker(settings)
        import automation.runtime.worker  # noqa: F401  every actor, handler and outbox sink

        factory = session_factory(settings)
        if once:
            print_json(run_pass(factory, clock.now()))
            return
        if not settings.redis_url:
            log.warning("REDIS_URL is not set: work this scheduler enqueues waits for `mactl run`")
        stop = threading.Event()
        _on_signals(lambda: stop.set())
        while not stop.is_set():
            _one_pass(run_pass, factory)
            if stop.wait(interval):
                break
            if frozen is not None:
                from datetime import timedelta

                frozen.advance(timedelta(seconds=interval))


def parse_time(value: str, default_timezone: str) -> datetime:
    """Parse an ISO-8601 time; a naive one is read in `default_timezone`."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--now: not an ISO-8601 time: {value!r}; use e.g. 2026-11-02T09:00+07:00")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(default_timezone))
    return parsed


def _one_pass(run_pass: Any, factory: Any) -> None:
    from automation.core.clock import now

    try:
        counts = run_pass(factory, now())
        log.info("scheduler pass", extra={"counts": counts})
    except Exception:
        log.exception("scheduler pass failed; retrying at the next interval")


def _on_signals(callback: Any) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        callback()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


@app.command("run")
def run(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="TCP port."),
    threads: int = typer.Option(4, min=1, help="In-process worker threads."),
    interval: float = typer.Option(30.0, min=0.1, help="Seconds between scheduler passes."),
    migrate: bool = typer.Option(True, help="Upgrade the database schema first."),
) -> None:
    """All in one process: migrate, HTTP API, worker threads and the scheduler.

    The embedded default: SQLite (WAL) and the in-process broker, nothing else to install.
    Stops cleanly on Ctrl-C or SIGTERM.
    """
    import uvicorn

    from automation.core.db import dispose_all, session_factory
    from automation.core.logging import configure_logging
    from automation.core.migrate import upgrade
    from automation.runtime.broker import configure_broker, start_inprocess_worker

    settings = load_settings()
    configure_logging(settings.log_level)
    with user_errors():
        if migrate:
            upgrade(settings.database_url)
        configure_broker(settings)
        import automation.runtime.worker  # noqa: F401  every actor, handler and outbox sink

        workers = start_inprocess_worker(threads)
    stop = threading.Event()
    passes = threading.Thread(
        target=_scheduler_loop,
        args=(stop, session_factory(settings), interval),
        name="scheduler",
        daemon=True,
    )
    passes.start()
    server = uvicorn.Server(
        uvicorn.Config(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
        )
    )
    # uvicorn captures SIGINT/SIGTERM while serving and re-raises them afterwards:
    # our handlers (restored by then) turn that into a clean stop instead of a kill.
    _on_signals(lambda: setattr(server, "should_exit", True))
    log.info(
        "mactl run started",
        extra={"host": host, "port": port, "threads": threads, "sqlite": settings.is_sqlite},
    )
    try:
        server.run()
    finally:
        stop.set()
        passes.join(timeout=10)
        workers.stop(timeout=10_000)
        dispose_all()
        log.info("mactl run stopped")
    if not server.started:
        raise typer.Exit(1)


def _scheduler_loop(stop: threading.Event, factory: Any, interval: float) -> None:
    from automation.runtime.scheduler import run_pass

    while not stop.is_set():
        _one_pass(run_pass, factory)
        if stop.wait(interval):
            break
