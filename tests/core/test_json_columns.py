"""JSON columns keep the standard library's behaviour under the orjson codec (core.jsoncodec):
integers beyond 64 bits round-trip exactly, NaN / Infinity are written as the standard
library writes them (SQLite keeps them, PostgreSQL refuses them as it always did)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from automation.core import jsoncodec
from automation.core.eventlog import record_event
from automation.core.models import Event

WIDE = {
    "above_u64": 2**64,
    "just_u64": 2**64 - 1,
    "below_i64": -(2**63) - 1,
    "huge": 10**30,
    "nested": [{"n": -(10**25)}, 2**70],
    "plain": 42,
    "text": "mã đơn 123456789012345678901234",  # digits in a string: still a string
}
NON_FINITE = {"nan": float("nan"), "inf": float("inf"), "neg_inf": float("-inf"), "n": 1}


def _store(session: Session, properties: dict[str, Any], key: str) -> int:
    event = record_event(session, "test.json", None, properties, key)
    assert event is not None
    session.commit()
    return event.id


def _read(session: Session, event_id: int) -> dict[str, Any]:
    session.expunge_all()
    payload = session.scalar(select(Event.payload).where(Event.id == event_id))
    assert isinstance(payload, dict)
    return payload


def test_integers_beyond_64_bits_round_trip_exactly(session: Session) -> None:
    event_id = _store(session, WIDE, "wide")
    back = _read(session, event_id)["properties"]
    assert back == WIDE
    assert all(type(back[k]) is type(v) for k, v in WIDE.items())  # no lossy floats


def test_the_database_holds_the_wide_integer_as_a_number(session: Session) -> None:
    event_id = _store(session, {"n": 2**64}, "wide-sql")
    if session.get_bind().dialect.name == "postgresql":
        held = session.scalar(
            text("SELECT payload->'properties'->>'n' FROM events WHERE id = :id"),
            {"id": event_id},
        )
        assert held == str(2**64)
        return
    raw = session.scalar(text("SELECT payload FROM events WHERE id = :id"), {"id": event_id})
    assert json.loads(raw)["properties"]["n"] == 2**64  # the text SQLite holds, exact


def test_nan_and_infinity_behave_as_with_the_standard_library(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # json.dumps writes NaN / Infinity, which jsonb refuses: an error, never a null.
        with pytest.raises((DBAPIError, StatementError)):
            _store(session, NON_FINITE, "non-finite")
        session.rollback()
        return
    back = _read(session, _store(session, NON_FINITE, "non-finite"))["properties"]
    assert math.isnan(back["nan"])
    assert back["inf"] == math.inf and back["neg_inf"] == -math.inf and back["n"] == 1


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1.5, None, True, "x"]},
        {"wide": 2**64, "neg": -(2**63) - 1, "s": "ư"},
        {"nan": float("nan")},
        {"inf": [float("inf"), {"deep": float("-inf")}], "none": None},
        {1: "int key", "k": (1, 2)},
        {"surrogate": "\ud800"},
        [2**100, -(10**40)],
    ],
)
def test_codec_writes_what_the_standard_library_reads_back_the_same(value: Any) -> None:
    written = jsoncodec.dumps(value)
    expected = json.loads(json.dumps(value))
    assert repr(jsoncodec.loads(written)) == repr(expected)
    assert repr(json.loads(written)) == repr(expected)
    assert repr(jsoncodec.loads(written.encode("utf-8", "surrogatepass"))) == repr(expected)


def test_codec_refuses_what_the_standard_library_refuses() -> None:
    from datetime import UTC, datetime

    with pytest.raises(TypeError):
        jsoncodec.dumps({"at": datetime(2026, 1, 1, tzinfo=UTC)})
    with pytest.raises(json.JSONDecodeError):
        jsoncodec.loads("{not json")
