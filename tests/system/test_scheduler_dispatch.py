"""Messages a `mactl scheduler --once` pass creates reach a running `mactl worker` at once.

On PostgreSQL the scheduler advances each enrollment inside a SAVEPOINT; the outbox
hand-off must wait for the real (outermost) commit, or the rows stay invisible to the
enqueueing session and wait for the stale-outbox sweep (10 minutes) instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.system.procs import REPO, Proc, Providers, mactl_ok, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
CONTACTS = 200
HELLO = """\
sequence: hello_reachable
purpose: transactional
trigger: {segment: reachable}
steps:
  - send: {channel: email, template: winback/reminder}
"""


def playbook(root: Path) -> Path:
    """A playbook folder: the shipped `reachable` segment and a one-step e-mail sequence."""
    (root / "segments").mkdir(parents=True)
    (root / "sequences").mkdir()
    shutil.copy(REPO / "playbooks/segments/reachable.yaml", root / "segments")
    (root / "sequences/hello.yaml").write_text(HELLO, encoding="utf-8")
    return root


def contacts_csv(path: Path) -> Path:
    """CONTACTS rows with an e-mail address and e-mail consent."""
    lines = ["email,first_name,consent_email"]
    lines += [f"khach{n}@example.vn,Khách{n},yes" for n in range(CONTACTS)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_scheduler_pass_messages_leave_within_seconds(
    system_env: dict[str, str], providers: Providers, pg_engine: sa.Engine, tmp_path: Path
) -> None:
    env = system_env  # OUTBOX_STALE_SECONDS stays at its 10-minute default
    mactl_ok("db", "upgrade", env=env, cwd=tmp_path)
    mactl_ok("apply", str(playbook(tmp_path / "pb")), env=env, cwd=tmp_path)
    worker = Proc(
        "worker", ["worker", "--processes", "1", "--threads", "4"], env, tmp_path,
        tmp_path / "worker.log",
    )
    try:
        worker.start()
        mactl_ok("contacts", "import", str(contacts_csv(tmp_path / "c.csv")), env=env, cwd=tmp_path)
        counts = json.loads(mactl_ok("scheduler", "--once", env=env, cwd=tmp_path))
        assert all(v >= 0 for v in counts.values()), counts
        with pg_engine.connect() as conn:
            created = conn.scalar(sa.text("SELECT count(*) FROM messages"))
        assert created == CONTACTS

        wait_for(
            lambda: len(providers.smtp.recorder.messages) >= CONTACTS,
            40, f"{CONTACTS} e-mails at the SMTP server", (worker,),
        )

        def sent() -> bool:  # the last batch's statuses commit just after its SMTP session
            with pg_engine.connect() as conn:
                query = sa.text("SELECT count(*) FROM messages WHERE status = 'sent'")
                return conn.scalar(query) == CONTACTS

        wait_for(sent, 10, f"{CONTACTS} messages recorded sent", (worker,))
    finally:
        worker.stop()
