"""sequences.current_version_id foreign key on PostgreSQL

0001 declared it with use_alter=True inside create_table, which Alembic skips on
PostgreSQL (SQLite keeps it inline). Found by tests/test_migrations.py.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # already inline in CREATE TABLE sequences
    op.create_foreign_key(
        "fk_sequences_current_version",
        "sequences",
        "sequence_versions",
        ["current_version_id"],
        ["id"],
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.drop_constraint("fk_sequences_current_version", "sequences", type_="foreignkey")
