"""process_event handler of analytics: conversions and attribution (after orders are stored)."""

from __future__ import annotations

from automation.analytics.conversions import record_conversions
from automation.core.processing import handles

handles(record_conversions)
