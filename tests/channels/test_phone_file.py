"""Phone spellings and the JSON-lines demo transport."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from channels.base import OutboundMessage
from channels.errors import PermanentError
from channels.filetransport import FileTransport
from channels.phone import msisdn, vn_national


def test_phone_spellings() -> None:
    assert msisdn("+84912345678") == "84912345678"
    assert msisdn("0912 345 678") == "84912345678"
    assert msisdn("84912345678") == "84912345678"
    assert vn_national("+84912345678") == "0912345678"
    assert vn_national("+14155550100") == "14155550100"
    with pytest.raises(PermanentError):
        msisdn("+84abc")


def test_file_transport_appends_json_lines_thread_safely(tmp_path: Path) -> None:
    path = tmp_path / "out" / "outbox.jsonl"
    transports = [FileTransport(path, name="sms"), FileTransport(path, name="email")]

    def worker(n: int) -> None:
        for i in range(50):
            msg_id = n * 1000 + i
            msg = OutboundMessage(id=msg_id, channel="sms", to="+84912345678", text="Chào " * 50)
            result = transports[n % 2].send(msg)
            assert result.provider_message_id == f"file-{msg_id}"

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 200
    assert len({r["id"] for r in rows}) == 200
    assert rows[0]["text"].startswith("Chào ")
    assert {r["transport"] for r in rows} == {"sms", "email"}
