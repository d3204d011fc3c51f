"""Per-provider messages-per-second limits, shared by every worker through Redis.

Pacing, not rejection: ``acquire(n)`` reserves ``n`` send slots and sleeps until the
first one is due (GCRA / virtual scheduling: one "theoretical arrival time" per
provider). With REDIS_URL the state is one Redis key per provider updated by a Lua
script using Redis' own clock, so all processes on all hosts share the limit; without
Redis an in-process limiter does the same per process.

Limits: PROVIDER_RATE_LIMITS (JSON ``{"zalo_zns": 50}``) over each provider unit's default
(automation.delivery.providers.DEFAULT_RATES); 0 = unlimited.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from automation.core.config import Settings, get_settings
from automation.delivery.providers import DEFAULT_RATES

_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval * n
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return tostring(tat - now)
"""


class Limiter(Protocol):
    """Reserve send slots; blocks until the first one is due."""

    spacing: float  # seconds between two slots (0 = unlimited)

    def acquire(self, n: int = 1) -> float: ...


class Unlimited:
    """No limit configured."""

    spacing = 0.0

    def acquire(self, n: int = 1) -> float:
        """Never waits."""
        return 0.0


class LocalLimiter:
    """In-process pacing for one provider (used when there is no Redis)."""

    def __init__(
        self,
        rate: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = self.spacing = 1.0 / rate
        self.sleep, self.clock = sleep, clock
        self._tat = 0.0
        self._lock = threading.Lock()

    def acquire(self, n: int = 1) -> float:
        """Reserve ``n`` slots; sleep until the first is due; return the wait in seconds."""
        with self._lock:
            now = self.clock()
            start = max(self._tat, now)
            self._tat = start + self.interval * n
        wait = start - now
        if wait > 0:
            self.sleep(wait)
        return max(wait, 0.0)


class RedisLimiter:
    """Pacing for one provider shared across processes through one Redis key."""

    def __init__(
        self, client: Any, provider: str, rate: float, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.client, self.key = client, f"ma:ratelimit:{provider}"
        self.interval_ms = 1000.0 / rate
        self.spacing = 1.0 / rate
        self.sleep = sleep
        self.script = client.register_script(_LUA)

    def acquire(self, n: int = 1) -> float:
        """Reserve ``n`` slots in Redis; sleep until the first is due; return the wait."""
        wait = float(self.script(keys=[self.key], args=[self.interval_ms, n])) / 1000.0
        if wait > 0:
            self.sleep(wait)
        return max(wait, 0.0)


def rate_for(provider: str, settings: Settings | None = None) -> float:
    """Messages per second allowed for ``provider`` (0 = unlimited).

    Settings validation guarantees every configured rate is finite and >= 0.
    """
    settings = settings or get_settings()
    rates = {**DEFAULT_RATES, **settings.provider_rate_limits}
    return float(rates.get(provider, 0.0))


_limiters: dict[tuple[str, str | None, float], Limiter] = {}
_lock = threading.Lock()


def limiter_for(provider: str, settings: Settings | None = None) -> Limiter:
    """The shared limiter for ``provider`` (Redis-backed when REDIS_URL is set)."""
    settings = settings or get_settings()
    rate = rate_for(provider, settings)
    key = (provider, settings.redis_url, rate)
    with _lock:
        if key not in _limiters:
            limiter: Limiter
            if rate <= 0:
                limiter = Unlimited()
            elif settings.redis_url:
                import redis

                limiter = RedisLimiter(redis.Redis.from_url(settings.redis_url), provider, rate)
            else:
                limiter = LocalLimiter(rate)
            _limiters[key] = limiter
        return _limiters[key]
