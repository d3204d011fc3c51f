"""channel_reachability: per-contact channel state (reachable | unreachable) and why

Revision ID: 0005
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

import automation.core.models

revision = "0005"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "channel_reachability",
        sa.Column("id", Id, nullable=False),
        sa.Column("contact_id", Id, nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("provider_code", sa.String(length=64), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("since", automation.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("message_id", Id, nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_channel_reachability_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_channel_reachability_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_reachability")),
        sa.UniqueConstraint(
            "contact_id", "channel", name=op.f("uq_channel_reachability_contact_id_channel")
        ),
    )


def downgrade() -> None:
    op.drop_table("channel_reachability")
