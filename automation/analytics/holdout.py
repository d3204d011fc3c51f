"""Holdout groups: a stable share of a sequence's contacts is enrolled but sent nothing.

A held-out enrollment carries ``context["holdout"] = true`` and walks its steps (waits,
branches, exits) like the others without creating messages, so its goal conversions are
measured over the same windows and the report can compare both groups.
"""

from __future__ import annotations

import hashlib


def holdout_bucket(sequence_key: str, contact_id: int) -> float:
    """A number in [0, 100) fixed for (sequence, contact), independent of split buckets."""
    digest = hashlib.sha256(f"holdout:{sequence_key}:{contact_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10000 / 100.0


def in_holdout(sequence_key: str, contact_id: int, share: float) -> bool:
    """True when the contact falls in the sequence's holdout share (percent)."""
    return share > 0 and holdout_bucket(sequence_key, contact_id) < share
