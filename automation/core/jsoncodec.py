"""JSON for the database's JSON columns: orjson where it gives the standard library's result,
the standard library itself where it would not.

The engine (automation.core.db) hands ``dumps`` and ``loads`` to SQLAlchemy as its
``json_serializer`` / ``json_deserializer`` (on PostgreSQL psycopg then uses them too).
What the standard library did before stays what happens:

- an integer beyond 64 bits: orjson refuses to write it and would read it as a lossy
  float, so both go to the standard library (the integer round-trips exactly);
- NaN and +/-Infinity: orjson would write ``null``; the standard library writes ``NaN``
  / ``Infinity`` (SQLite keeps it and reads it back, PostgreSQL rejects it as before);
- values orjson does not take or writes differently (non-string keys, lone surrogates,
  datetimes, dataclasses, subclasses of str/int/dict/list): the standard library.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

# Types orjson would write natively where the standard library raises or writes another
# way: passed through to ``_refuse``, so the standard library decides (as before).
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | (
    orjson.OPT_PASSTHROUGH_SUBCLASS
)
# An integer beyond 64 bits (below -2**63 or above 2**64-1) has at least 20 digits, or 19
# after a minus: digits folded to "0", two substring searches find such a run.
_BYTES_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_STR_DIGITS = str.maketrans("123456789", "000000000")
_WIDE_BYTES = (b"0" * 20, b"-" + b"0" * 19)
_WIDE_STR = ("0" * 20, "-" + "0" * 19)


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is left to the standard library")


def _non_finite(value: Any) -> bool:
    """True when ``value`` holds a NaN or an infinity (orjson would write null for it)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_non_finite(v) for v in value)
    return False


def dumps(value: Any) -> str:
    """The JSON text of ``value``, as ``json.dumps`` reads it back (orjson when it agrees)."""
    try:
        text = orjson.dumps(value, default=_refuse, option=_OPTIONS)
    except TypeError:  # wide integers, non-string keys, other types: as before
        return json.dumps(value)
    if b"null" in text and _non_finite(value):
        return json.dumps(value)
    return text.decode()


def has_wide_integer(data: str | bytes) -> bool:
    """True when ``data`` holds a digit run orjson could read as a lossy float (also inside
    strings: then the standard library decodes it, which is only slower)."""
    if isinstance(data, str):
        folded_str = data.translate(_STR_DIGITS)
        return _WIDE_STR[0] in folded_str or _WIDE_STR[1] in folded_str
    folded = bytes(data).translate(_BYTES_DIGITS)
    return _WIDE_BYTES[0] in folded or _WIDE_BYTES[1] in folded


def loads(data: str | bytes, exact: bool = True) -> Any:
    """The value of JSON text: orjson for the common case, the standard library when orjson
    refuses the text (NaN, Infinity, lone surrogates) or would lose a wide integer.

    The standard library's errors (JSONDecodeError, UnicodeDecodeError, RecursionError,
    ValueError for more than 4,300 digits) propagate. ``exact=False`` skips the search for
    wide integers (8 us on a 7 KB order) when only the text's validity matters: orjson
    accepts the same documents (integers up to about 10**308, as floats; longer ones it
    refuses, and the standard library decides).
    """
    if not exact or not has_wide_integer(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)
