"""``column IN (values)`` for a batch's queries: one array parameter on PostgreSQL.

SQLAlchemy renders ``in_()`` with one bound parameter per value, expanded again at every
execution; a send batch's queries pass 50 to 100 ids or addresses each. On PostgreSQL
``column = ANY(:values)`` is one parameter and the same SQL text every time. Other
databases get ``in_()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session

from automation.core.db import is_postgres


def one_of(
    session: Session, column: InstrumentedAttribute[Any], values: Iterable[Any]
) -> ColumnElement[bool]:
    """``column`` is one of ``values`` (see the module docstring)."""
    values = list(values)
    if not is_postgres(session):
        return column.in_(values)
    return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
