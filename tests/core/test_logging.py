"""automation.core.logging: one JSON object per line, personal data masked."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from automation.core import logging as logging_module
from automation.core.logging import configure_logging, redact
from automation.core.models import Contact


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_without_personal_data(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    configure_logging("INFO")  # idempotent: still one line per record
    log = logging.getLogger("automation.test")
    log.info(
        "sent to lan@example.vn / 0912 345 678 / +84 903 123 456 on 2026-11-02, event %s",
        123456789,
        extra={"email": "lan@example.vn", "contact_id": 42, "counts": {"due": 3}},
    )
    log.debug("not shown at INFO")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "info" and record["logger"] == "automation.test"
    assert record["message"] == "sent to [email] / [phone] / [phone] on 2026-11-02, event 123456789"
    assert record["email"] == "[redacted]" and record["contact_id"] == 42
    assert json.loads(record["counts"]) == {"due": 3}
    assert "lan@example" not in lines[0]


def test_redact_keeps_ids_and_dates() -> None:
    assert redact("order 1001 at 2026-11-02T09:00 total 1250000") == (
        "order 1001 at 2026-11-02T09:00 total 1250000"
    )
    assert redact("zns 84912345678 ok") == "zns [phone] ok"


def test_sql_tracebacks_carry_no_parameters_nor_names(
    session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    session.add(Contact(email="lan@example.vn", first_name="Lan", attributes={}, tags=[]))
    session.commit()
    try:
        session.add(Contact(email="lan@example.vn", first_name="Thị Lan", attributes={}, tags=[]))
        session.commit()
    except IntegrityError:
        session.rollback()
        log = logging.getLogger("automation.test")
        log.exception("import failed for %r", {"first_name": "Thị Lan"})
    out = capsys.readouterr().err
    record = json.loads(out.strip().splitlines()[-1])
    assert "IntegrityError" in record["exception"]
    assert "Thị Lan" not in out and "lan@example" not in out
    assert "hidden due to hide_parameters" in record["exception"]
    assert "'first_name': [redacted]" in record["message"]


def test_personal_values_in_free_text_are_masked() -> None:
    text = redact("Contact(first_name='Lan', zalo_user_id=\"28933\", id=3) {\"last_name\": \"Võ\"}")
    assert text == (
        'Contact(first_name=[redacted], zalo_user_id=[redacted], id=3) {"last_name": [redacted]}'
    )


def test_repeated_failures_are_rate_limited(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging_module, "REPEAT_WINDOW", 0.3)
    configure_logging("INFO")
    log = logging.getLogger("automation.test")

    def fail(event_id: int) -> None:
        try:
            raise OverflowError("date value out of range")
        except OverflowError:
            log.warning("event handler failed", exc_info=True,
                        extra={"failure_key": f"event-handler:{event_id}"})

    for _ in range(5):
        fail(7)
    fail(8)  # another key is not held back
    log.info("plain lines are never held back")
    log.info("plain lines are never held back")
    time.sleep(0.35)
    fail(7)
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert [(r["message"], r.get("failure_key"), r.get("repeated")) for r in lines] == [
        ("event handler failed", "event-handler:7", None),
        ("event handler failed", "event-handler:8", None),
        ("plain lines are never held back", None, None),
        ("plain lines are never held back", None, None),
        ("event handler failed", "event-handler:7", 4),
    ]
    assert sum("Traceback" in r.get("exception", "") for r in lines) == 3


def test_dramatiq_plain_text_handler_is_replaced(capsys: pytest.CaptureFixture[str]) -> None:
    logging.basicConfig(format="[%(asctime)s] [PID %(process)d] %(message)s", force=True)
    configure_logging("INFO")
    logging.getLogger("dramatiq.worker.Worker").info("Worker process is ready for action.")
    [line] = capsys.readouterr().err.strip().splitlines()
    assert json.loads(line)["logger"] == "dramatiq.worker.Worker"


def test_lines_stay_strict_json_for_odd_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    """NaN is not JSON (a log shipper refuses the line); an int beyond 64 bits still logs."""
    configure_logging("INFO")
    log = logging.getLogger("automation.test")
    log.info("ratio", extra={"ratio": float("nan"), "huge": 2**70})

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    record = json.loads(capsys.readouterr().err.strip(), parse_constant=refuse)
    assert record["ratio"] is None
    assert record["huge"] == 2**70


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("to:lan@example.vn", "to:[redacted]"),  # a key's value behind ':' alone
        ("reply from lan@example.vn", "reply from [email]"),  # '@' without '=' or ':'
        ("call 0912345678", "call [phone]"),  # digits alone
        ("no personal data here", "no personal data here"),
    ],
)
def test_each_mask_runs_when_its_character_is_there(text: str, masked: str) -> None:
    assert redact(text) == masked
