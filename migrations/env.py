"""Alembic environment: the URL comes from the caller or from DATABASE_URL."""

from alembic import context
from sqlalchemy import create_engine, pool

from automation.core.config import get_settings
from automation.core.models import Base

config = context.config
url = config.attributes.get("database_url") or get_settings().database_url


def run_migrations() -> None:
    """Run migrations online against the configured database."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()


def _run(connection):  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
