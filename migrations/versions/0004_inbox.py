"""inbox: raw webhook deliveries, stored before mapping (pending, mapped, quarantined)

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import automation.core.models
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("topic", sa.String(length=128), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column(
            "headers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", automation.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("mapped_at", automation.core.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
        sa.UniqueConstraint("source", "dedupe_key", name=op.f("uq_inbox_source_dedupe_key")),
    )
    op.create_index("ix_inbox_status_id", "inbox", ["status", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_inbox_status_id", table_name="inbox")
    op.drop_table("inbox")
