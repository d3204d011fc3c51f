"""The embedded default: `mactl run` on SQLite with the in-process broker, no Redis.

`mactl run` migrates, serves HTTP, runs worker threads and the scheduler thread. While
it runs, `mactl apply playbooks/` writes the sequences from a second process; a signed
native lead.captured event is then processed in-process and the welcome e-mail goes to
the file transport (no SMTP_URL) at once. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from tests.system.procs import (
    REPO,
    SECRETS,
    Proc,
    base_env,
    free_port,
    mactl_ok,
    native_headers,
    wait_for,
    wait_http_ok,
)

EMAIL = "thu.pham@example.vn"


def outbox_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_system_embedded_run_sqlite_sends_welcome_to_file_transport(tmp_path: Path) -> None:
    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'embedded.db'}"
    outbox = tmp_path / "outbox.jsonl"
    env = base_env(
        DATABASE_URL=db_url,
        OUTBOX_FILE=str(outbox),
        EVENTS_WEBHOOK_SECRET=SECRETS["EVENTS_WEBHOOK_SECRET"],
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SHOP_NAME="Lụa Hà Đông",
    )
    run = Proc(
        "run", ["run", "--port", str(port), "--threads", "2", "--interval", "1"],
        env, tmp_path, tmp_path / "run.log",
    )
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        run.start()
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", run)
        mactl_ok("apply", str(REPO / "playbooks"), env=env, cwd=tmp_path)
        body = json.dumps(
            {
                "id": "lead-embedded-1",
                "type": "lead.captured",
                "occurred_at": datetime.now(UTC).isoformat(),
                "contact": {
                    "email": EMAIL,
                    "first_name": "Thu",
                    "consent": {"email": {"marketing": True}},
                },
                "properties": {"form": "footer", "coupon_code": "CHAOTHU"},
            },
            ensure_ascii=False,
        ).encode()
        answer = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/events", content=body,
            headers=native_headers(SECRETS["EVENTS_WEBHOOK_SECRET"], body), timeout=10,
        )
        assert answer.status_code == 202, answer.text

        def welcome() -> list[dict[str, Any]]:
            return [m for m in outbox_lines(outbox) if m.get("to") == EMAIL]

        lines = wait_for(welcome, 30, "the welcome e-mail in OUTBOX_FILE", (run,))
        with engine.connect() as conn:
            processed = conn.execute(
                sa.text("SELECT count(*) FROM events WHERE source = 'native' "
                        "AND processed_at IS NOT NULL")
            ).scalar()
            sent = conn.execute(
                sa.text("SELECT id, template, status, provider FROM messages")
            ).all()
        assert processed == 1
        assert [(r.template, r.status, r.provider) for r in sent] == [
            ("lead_capture/welcome", "sent", "file")
        ]
        assert len(lines) == 1
        mail = lines[0]
        assert mail["channel"] == "email" and mail["id"] == sent[0].id
        assert mail["subject"].startswith("[QC]") and "Thu" in mail["subject"]
        assert "CHAOTHU" in mail["text"]
        assert mail["unsubscribe_url"].startswith(f"http://127.0.0.1:{port}/")
    finally:
        code = run.stop(timeout=20)
        engine.dispose()
    assert code == 0, run.output()[-3000:]
    assert "Traceback" not in run.output(), run.output()[-3000:]
