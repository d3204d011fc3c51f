"""events: processing attempts, failed handlers, last failure and the dead-event mark

Revision ID: 0008
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

from automation.core.models import UTCDateTime

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(
            sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(sa.Column("failed_handlers", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("failure", sa.Text(), nullable=True))
        batch.add_column(sa.Column("dead_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("dead_at")
        batch.drop_column("failure")
        batch.drop_column("failed_handlers")
        batch.drop_column("attempts")
