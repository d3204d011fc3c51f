"""Keep the garbage collector off the objects a long-running process loads at start-up.

A server or worker holds hundreds of thousands of long-lived objects (modules, models,
SQLAlchemy metadata, phone-number and locale tables). CPython's oldest-generation
collection walks all of them: on the ingest path that was a pause of tens of
milliseconds every few hundred requests (webhook p99 95 ms with nothing else slow).
Freezing them once after start-up moves them to a permanent generation the collector
never scans; everything created later is collected as usual.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect once, then freeze every object alive now; returns how many are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
