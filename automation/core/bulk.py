"""Many rows in one PostgreSQL statement: the rows travel as one JSON document.

``jsonb_to_recordset(CAST(:rows AS jsonb))`` turns the document back into rows on the
server. One text parameter is cheap to send, where arrays of strings (``unnest``) are
escaped element by element in Python by the driver. The planner guesses 100 rows for
the document, which on a table of a few thousand rows chose a hash join over a full scan
of ``messages``; each statement also says ``m.id = ANY(:ids)`` (an array of integers, cheap
to send) so the primary key is used whatever the table's size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import orjson


def rows_json(rows: Iterable[dict[str, Any]]) -> str:
    """The rows as a JSON array (orjson; the standard library for what orjson refuses)."""
    rows = list(rows)
    try:
        return orjson.dumps(rows).decode()
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits
        return json.dumps(rows, default=str)
