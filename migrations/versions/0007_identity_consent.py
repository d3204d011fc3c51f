"""identity and consent evidence: a phone may be shared; consent records (append-only)

contacts.phone loses its unique constraint (a family often shares one phone) and gets a
plain index; consent_records holds the evidence of every consent decision. Each existing
consents row is copied into consent_records (method "migrated") so that the current state
stays derivable from the records.

Revision ID: 0007
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

import automation.core.models

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        # SQLite rebuilds the contacts table here; with foreign keys on, dropping the old
        # table would cascade-delete every consent, identity, enrollment and message.
        raise RuntimeError("run this migration with PRAGMA foreign_keys=OFF (mactl db upgrade)")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_constraint("uq_contacts_phone", type_="unique")
        batch.create_index("ix_contacts_phone", ["phone"], unique=False)
    op.create_table(
        "consent_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("form", sa.Text(), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("given_at", automation.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at", automation.core.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_consent_records_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    op.create_index(
        "ix_consent_records_contact_key",
        "consent_records",
        ["contact_id", "channel", "purpose", "id"],
        unique=False,
    )
    op.execute(
        "INSERT INTO consent_records (contact_id, channel, purpose, status, source, method,"
        " given_at, recorded_at)"
        " SELECT contact_id, channel, purpose, status, source, 'migrated', recorded_at,"
        " recorded_at FROM consents ORDER BY id"
    )


def downgrade() -> None:
    op.drop_index("ix_consent_records_contact_key", table_name="consent_records")
    op.drop_table("consent_records")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_index("ix_contacts_phone")
        batch.create_unique_constraint("uq_contacts_phone", ["phone"])
