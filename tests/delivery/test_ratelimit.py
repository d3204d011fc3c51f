"""Per-provider messages-per-second limits: in-process, and shared by two workers via Redis.

The limiter paces (GCRA): the k-th slot of a burst is due at ``t0 + k/R``. The
schedule itself never holds more than R slots in any 1-second window (checked exactly
on a virtual clock). Real send times add thread wake-up jitter on top of the schedule,
so slot k+R (due exactly 1.000 s after slot k) can land a few milliseconds inside
slot k's window: the real-time tests allow 50 ms of jitter at the window edge and
still check the total span, which a limiter that is not shared would halve.
"""

from __future__ import annotations

import bisect
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from automation.core.config import Settings, load_settings
from automation.delivery.ratelimit import (
    Limiter,
    LocalLimiter,
    RedisLimiter,
    Unlimited,
    limiter_for,
    rate_for,
)

JITTER = 0.05  # seconds of wake-up jitter tolerated at the 1-second window edge


def max_in_window(stamps: list[float], width: float) -> int:
    """The most timestamps falling in any half-open window [t, t + width)."""
    ts = sorted(stamps)
    return max(bisect.bisect_left(ts, t + width) - i for i, t in enumerate(ts))


def virtual_schedule(limiters: list[Limiter], per_limiter: int) -> list[float]:
    """Due times when every request arrives at t=0 (nothing actually sleeps)."""
    due: list[float] = []
    for _ in range(per_limiter):
        for limiter in limiters:
            due.append(limiter.acquire(1))
    return due


def run_workers(limiters: list[Limiter], total: int) -> list[float]:
    """Each limiter in its own thread takes total/len(limiters) slots (really sleeping);
    returns the time each slot was due (asked at + the wait the limiter granted). A thread
    woken late by a loaded machine would otherwise crowd its send into the next window."""
    stamps: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(len(limiters))

    def worker(limiter: Limiter) -> None:
        start.wait()
        for _ in range(total // len(limiters)):
            asked = time.monotonic()
            due = asked + limiter.acquire(1)
            with lock:
                stamps.append(due)

    threads = [threading.Thread(target=worker, args=(lim,)) for lim in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(stamps) == total
    return sorted(stamps)


def assert_paced(stamps: list[float], rate: int) -> None:
    """Span and per-window counts of real send times at ``rate`` per second."""
    n = len(stamps)
    span = stamps[-1] - stamps[0]
    # N sends at R/s: the first at t0, the last at t0 + (N-1)/R.
    assert span >= (n - 1) / rate - 0.02, f"{n} sends in {span:.3f}s: faster than {rate}/s"
    assert span < (n - 1) / rate + 0.75, f"{n} sends in {span:.3f}s: throttled below {rate}/s"
    assert max_in_window(stamps, 1.0 - JITTER) <= rate
    assert max_in_window(stamps, 1.0) <= rate + 1
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(1 / rate, abs=0.01)


# --- the schedule, on a virtual clock -------------------------------------------------


def test_burst_is_spread_one_slot_per_interval() -> None:
    limiter = LocalLimiter(20, sleep=lambda s: None, clock=lambda: 0.0)
    due = virtual_schedule([limiter], 60)
    assert due == pytest.approx([k / 20 for k in range(60)])
    # Slot k+20 is due exactly 1 s after slot k (up to float rounding of the sums).
    assert max_in_window(due, 1.0 - 1e-9) == 20
    assert max_in_window(due, 1.0 + 1e-9) == 21


def test_batch_reservation_pushes_the_next_caller_back() -> None:
    limiter = LocalLimiter(10, sleep=lambda s: None, clock=lambda: 0.0)
    assert limiter.acquire(5) == 0.0
    assert limiter.acquire(1) == pytest.approx(0.5)


def test_idle_time_does_not_bank_a_burst() -> None:
    now = [0.0]
    limiter = LocalLimiter(10, sleep=lambda s: None, clock=lambda: now[0])
    limiter.acquire(1)
    now[0] = 100.0  # long idle: no credit accumulates
    assert [limiter.acquire(1) for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])


def test_two_local_limiters_do_not_share() -> None:
    """The failure the Redis test guards against: per-process limits add up."""
    a = LocalLimiter(20, sleep=lambda s: None, clock=lambda: 0.0)
    b = LocalLimiter(20, sleep=lambda s: None, clock=lambda: 0.0)
    assert max_in_window(virtual_schedule([a, b], 30), 1.0 - 1e-9) == 40


# --- real time ------------------------------------------------------------------------


def test_in_process_limit_shared_by_worker_threads() -> None:
    rate, total = 40, 60
    limiter = LocalLimiter(rate)
    stamps = run_workers([limiter, limiter, limiter], total)
    assert_paced(stamps, rate)


@pytest.fixture
def redis_clients(redis_url: str) -> Iterator[tuple[redis.Redis, redis.Redis, str]]:
    """Two independent Redis connections (two workers) and a provider name of our own."""
    provider = f"test-{uuid.uuid4().hex[:12]}"
    first, second = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    yield first, second, provider
    first.delete(f"ma:ratelimit:{provider}")
    first.close()
    second.close()


@pytest.mark.redis
def test_limit_is_shared_by_two_workers_through_redis(
    redis_clients: tuple[redis.Redis, redis.Redis, str],
) -> None:
    first, second, provider = redis_clients
    settings = Settings(provider_rate_limits={provider: 20})
    rate, total = int(rate_for(provider, settings)), 60
    worker_a, worker_b = RedisLimiter(first, provider, rate), RedisLimiter(second, provider, rate)
    first.ping(), second.ping()  # connect and load the script before the clock starts
    first.script_load(worker_a.script.script)
    started = time.monotonic()
    stamps = run_workers([worker_a, worker_b], total)
    elapsed = time.monotonic() - started

    # Two unshared 20/s limiters would finish 60 sends in ~1.5 s.
    assert elapsed >= total / rate - 1
    assert_paced(stamps, rate)
    ttl = first.pttl(f"ma:ratelimit:{provider}")
    assert 0 < ttl <= 2000, "the pacing key must expire soon after the last slot"


@pytest.mark.redis
def test_limiter_for_uses_redis_when_configured(redis_url: str) -> None:
    provider = f"test-{uuid.uuid4().hex[:12]}"
    with_redis = Settings(redis_url=redis_url, provider_rate_limits={provider: 7})
    limiter = limiter_for(provider, with_redis)
    assert isinstance(limiter, RedisLimiter)
    assert limiter.interval_ms == pytest.approx(1000 / 7)
    assert limiter_for(provider, with_redis) is limiter
    local = limiter_for(provider, Settings(redis_url=None, provider_rate_limits={provider: 7}))
    assert isinstance(local, LocalLimiter)


# --- configuration --------------------------------------------------------------------


def test_zero_means_unlimited() -> None:
    settings = Settings(provider_rate_limits={"zalo_zns": 0})
    limiter = limiter_for("zalo_zns", settings)
    assert isinstance(limiter, Unlimited)
    started = time.monotonic()
    assert sum(limiter.acquire(1) for _ in range(1000)) == 0.0
    assert time.monotonic() - started < 0.1


def test_configured_rate_overrides_default_and_unknown_provider_is_unlimited() -> None:
    settings = Settings(provider_rate_limits={"esms": 5})
    assert rate_for("esms", settings) == 5.0
    assert rate_for("twilio", settings) == 10.0
    assert rate_for("carrier-pigeon", settings) == 0.0


@pytest.mark.parametrize("bad", ["-5", "NaN", "Infinity"])
def test_negative_or_non_finite_rate_is_rejected_at_start(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVIDER_RATE_LIMITS", f'{{"zalo_zns": {bad}}}')
    with pytest.raises(SystemExit, match=r"PROVIDER_RATE_LIMITS: .*zalo_zns=.*0 = unlimited"):
        load_settings()


def test_non_numeric_rate_in_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROVIDER_RATE_LIMITS", '{"zalo_zns": "fast"}')
    with pytest.raises(SystemExit, match="PROVIDER_RATE_LIMITS"):
        load_settings()
