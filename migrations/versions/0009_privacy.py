"""privacy: audit log, erasure records, an index for the raw-payload retention purge

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa
import automation.core.models
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", ID, nullable=False),
        sa.Column("at", automation.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_table(
        "erasures",
        sa.Column("id", ID, nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("erased_at", automation.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("counts", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    op.create_index(op.f("ix_erasures_contact_id"), "erasures", ["contact_id"], unique=False)
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_inbox_received_at", table_name="inbox")
    op.drop_index(op.f("ix_erasures_contact_id"), table_name="erasures")
    op.drop_table("erasures")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
