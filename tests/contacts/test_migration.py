"""Migration 0007 keeps every contact and turns existing consents into evidence."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from automation.core.migrate import alembic_config, upgrade
from tests.conftest import PG_ADMIN_URL

NOW = "2026-11-01 10:00:00"


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, unmigrated database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    name = f"ma_mig_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_upgrade_keeps_contacts_and_backfills_consent_evidence(empty_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(empty_url))
    before = script.get_revision("0007").down_revision
    assert isinstance(before, str)
    upgrade(empty_url, before)
    engine = sa.create_engine(empty_url)
    contact = (
        "INSERT INTO contacts (id, email, phone, attributes, tags, orders_count, total_spent,"
        " last_inbound_at, created_at, updated_at) VALUES (:id, :email, :phone, '{}', '[]',"
        " 0, 0, '{}', :now, :now)"
    )
    with engine.begin() as conn:
        conn.execute(
            sa.text(contact), {"id": 1, "email": "minh@x.vn", "phone": "+84912345678", "now": NOW}
        )
        conn.execute(
            sa.text(
                "INSERT INTO consents (contact_id, channel, purpose, status, source, recorded_at)"
                " VALUES (1, 'sms', 'marketing', 'denied', 'shopify', :now)"
            ),
            {"now": NOW},
        )
    upgrade(empty_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(contact), {"id": 2, "email": "mai@x.vn", "phone": "+84912345678", "now": NOW}
        )
        phones = conn.execute(sa.text("SELECT count(*) FROM contacts WHERE phone = '+84912345678'"))
        assert phones.scalar() == 2  # a shared phone is allowed now
        assert conn.execute(sa.text("SELECT count(*) FROM consents")).scalar() == 1
        record = conn.execute(
            sa.text("SELECT contact_id, channel, status, source, method FROM consent_records")
        ).one()
    engine.dispose()
    assert tuple(record) == (1, "sms", "denied", "shopify", "migrated")
