"""events: a partial index on the live unprocessed rows (the scheduler's pending pass)

Without it every pass scanned the whole events table for `processed_at IS NULL`.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PENDING = sa.text("processed_at IS NULL AND dead_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_events_pending", "events", ["id"], postgresql_where=PENDING, sqlite_where=PENDING
    )


def downgrade() -> None:
    op.drop_index("ix_events_pending", table_name="events")
