"""The Alembic migrations build exactly the schema automation.core.models declares."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from automation.core.migrate import alembic_config
from automation.core.models import Base


@pytest.mark.parametrize("backend_url", ["sqlite_url", "postgres_url"])
def test_autogenerate_finds_no_difference(
    backend_url: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(backend_url)  # migrated to head by the fixture
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "target_metadata": Base.metadata}
            )
            head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
            assert context.get_current_revision() == head
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations differ on {engine.dialect.name}: {diff}"
