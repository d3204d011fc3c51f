"""automation.core.logging: one JSON object per line, personal data masked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from automation.core.logging import configure_logging, redact


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
