"""Bulk contact import: upsert parsed CSV rows in batches, report per-row errors.

Rows come from ``csvfile.read_csv`` and are validated by ``rows.parse_row``. Empty
cells never erase stored values. Each batch is resolved with a few bulk lookups and
written with bulk inserts/updates (SQLAlchemy Core), so 100k rows take seconds.

A row is matched to one stored contact by external_id (per source), email,
phone, Zalo user id or Facebook PSID. If its identifiers point at two different
contacts the row is rejected: we never merge two people on a guess.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, or_, select
from sqlalchemy.orm import Session

from automation.contacts.bulk import allocate_ids, bulk_insert, bulk_update, one_of
from automation.contacts.csvfile import ImportFileError, read_csv
from automation.contacts.rows import (
    ADDRESS_COLUMNS,
    ID_COLUMNS,
    NAME_COLUMNS,
    ParsedRow,
    RowError,
    parse_row,
)
from automation.core.clock import now
from automation.core.models import Consent, Contact, ContactIdentity
from automation.core.vocabulary import MARKETING
from automation.privacy.hashing import erased_addresses

__all__ = [
    "ImportFileError",
    "ImportReport",
    "RowError",
    "import_rows",
    "read_csv",
    "write_error_report",
]

CONTACT_FIELDS = (*ADDRESS_COLUMNS, *NAME_COLUMNS, "attributes", "tags")
CONTACTS: Table = Contact.__table__  # type: ignore[assignment]
CONSENTS: Table = Consent.__table__  # type: ignore[assignment]
IDENTITIES: Table = ContactIdentity.__table__  # type: ignore[assignment]


@dataclass
class ImportReport:
    """What an import did."""

    created: int = 0
    updated: int = 0
    failed: int = 0
    rows: int = 0
    seconds: float = 0.0
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Summary plus errors, for --json."""
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "errors": [error.as_dict() for error in self.errors],
        }


@dataclass
class _Draft:
    """A contact being written in this batch (existing: id set; new: id None until insert)."""

    values: dict[str, Any]
    id: int | None = None
    external_ids: set[str] = field(default_factory=set)
    consents: dict[str, bool] = field(default_factory=dict)
    touched: bool = False


class _Batch:
    """Resolve and write one chunk of parsed rows with bulk statements."""

    def __init__(self, session: Session, source: str, report: ImportReport) -> None:
        self.session = session
        self.source = source
        self.report = report
        self.drafts: list[_Draft] = []
        self.index: dict[tuple[str, str], _Draft] = {}
        self.erased: set[str] = set()

    def load(self, parsed: list[ParsedRow]) -> None:
        """Fetch every stored contact any row of the batch may refer to."""
        wanted: dict[str, set[str]] = {name: set() for name in ID_COLUMNS}
        for row in parsed:
            for name, value in row.ids.items():
                wanted[name].add(value)
        self.erased = erased_addresses(
            self.session, {v for name in ADDRESS_COLUMNS for v in wanted[name]}
        )
        conn = self.session.connection()
        contact_ids: dict[int, set[str]] = {}
        if wanted["external_id"]:
            for contact_id, external_id in self.session.execute(
                select(ContactIdentity.contact_id, ContactIdentity.external_id).where(
                    ContactIdentity.source == self.source,
                    one_of(conn, ContactIdentity.external_id, wanted["external_id"]),
                )
            ):
                contact_ids.setdefault(contact_id, set()).add(external_id)
        table = CONTACTS
        conditions = [
            one_of(conn, table.c[name], wanted[name]) for name in ADDRESS_COLUMNS if wanted[name]
        ]
        if contact_ids:
            conditions.append(one_of(conn, table.c.id, contact_ids))
        if not conditions:
            return
        columns = [table.c.id, *(table.c[name] for name in CONTACT_FIELDS)]
        for record in self.session.execute(select(*columns).where(or_(*conditions))).mappings():
            draft = _Draft(values={name: record[name] for name in CONTACT_FIELDS}, id=record["id"])
            draft.values["attributes"] = dict(draft.values["attributes"] or {})
            draft.values["tags"] = list(draft.values["tags"] or [])
            draft.external_ids = contact_ids.get(record["id"], set())
            self.drafts.append(draft)
            for name in ADDRESS_COLUMNS:
                if draft.values[name]:
                    self.index[(name, draft.values[name])] = draft
            for external_id in draft.external_ids:
                self.index[("external_id", external_id)] = draft

    def apply(self, row: ParsedRow) -> None:
        """Merge one row into its contact (found, or new); records a conflict as a row error."""
        erased = [name for name in ADDRESS_COLUMNS if row.ids.get(name) in self.erased]
        if erased:
            self.report.failed += 1
            self.report.errors.append(
                RowError(
                    row.row,
                    erased[0],
                    f"this {erased[0]} was erased on its owner's request (mactl contacts forget)",
                    "remove the row: a forgotten address is not collected again",
                )
            )
            return
        matches: dict[int, tuple[str, _Draft]] = {}
        for name, value in row.ids.items():
            draft = self.index.get((name, value))
            if draft is not None:
                matches.setdefault(id(draft), (name, draft))
        if len(matches) > 1:
            (first, _), (second, _) = list(matches.values())[:2]
            self.report.failed += 1
            self.report.errors.append(
                RowError(
                    row.row,
                    second,
                    f"{second} {row.ids[second]!r} belongs to a different contact than "
                    f"{first} {row.ids[first]!r}",
                    "correct the row, or import the two people on separate rows",
                )
            )
            return
        if matches:
            draft = next(iter(matches.values()))[1]
            self.report.updated += 1
        else:
            draft = _Draft(values={name: None for name in CONTACT_FIELDS})
            draft.values["attributes"], draft.values["tags"] = {}, []
            self.drafts.append(draft)
            self.report.created += 1
        draft.touched = True
        for name in ADDRESS_COLUMNS:
            address = row.ids.get(name)
            if address and draft.values[name] != address:
                previous = draft.values[name]
                if previous:
                    self.index.pop((name, previous), None)
                draft.values[name] = address
                self.index[(name, address)] = draft
        if "external_id" in row.ids:
            draft.external_ids.add(row.ids["external_id"])
            self.index[("external_id", row.ids["external_id"])] = draft
        draft.values.update(row.fields)
        if row.attributes:
            draft.values["attributes"] = {**draft.values["attributes"], **row.attributes}
        for tag in row.tags:
            if tag not in draft.values["tags"]:
                draft.values["tags"] = [*draft.values["tags"], tag]
        draft.consents.update(row.consents)

    def write(self) -> None:
        """Bulk update touched contacts, insert new ones, then identities and consents.

        Updates go first so an address moved off a stored contact is free for a new one.
        """
        conn = self.session.connection()
        stamp = now()
        new = [d for d in self.drafts if d.touched and d.id is None]
        old = [d for d in self.drafts if d.touched and d.id is not None]
        bulk_update(conn, CONTACTS, [{**d.values, "id": d.id, "updated_at": stamp} for d in old])
        if new:
            rows = [
                {
                    **d.values,
                    "orders_count": 0,
                    "total_spent": 0,
                    "last_inbound_at": {},
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                for d in new
            ]
            ids = allocate_ids(conn, CONTACTS, len(new))
            for draft, row, contact_id in zip(new, rows, ids, strict=True):
                draft.id = row["id"] = contact_id
            bulk_insert(conn, CONTACTS, rows)
        self._write_identities(conn, [*new, *old])
        self._write_consents(conn, [d for d in (*new, *old) if d.consents], stamp)

    def _write_identities(self, conn: Connection, drafts: list[_Draft]) -> None:
        wanted = {(external_id, d.id) for d in drafts for external_id in d.external_ids}
        if not wanted:
            return
        existing = set(
            conn.execute(
                select(IDENTITIES.c.external_id).where(
                    IDENTITIES.c.source == self.source,
                    one_of(conn, IDENTITIES.c.external_id, [e for e, _ in wanted]),
                )
            ).scalars()
        )
        rows = [
            {"contact_id": contact_id, "source": self.source, "external_id": external_id}
            for external_id, contact_id in sorted(wanted, key=lambda pair: pair[0])
            if external_id not in existing
        ]
        bulk_insert(conn, IDENTITIES, rows)

    def _write_consents(self, conn: Connection, drafts: list[_Draft], stamp: Any) -> None:
        if not drafts:
            return
        table = CONSENTS
        current = {
            (contact_id, channel): (consent_id, status)
            for consent_id, contact_id, channel, status in conn.execute(
                select(table.c.id, table.c.contact_id, table.c.channel, table.c.status).where(
                    one_of(conn, table.c.contact_id, [d.id for d in drafts]),
                    table.c.purpose == MARKETING,
                )
            )
        }
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for draft in drafts:
            for channel, granted in draft.consents.items():
                status = "granted" if granted else "denied"
                found = current.get((draft.id, channel))
                if found is None:
                    inserts.append(
                        {
                            "contact_id": draft.id,
                            "channel": channel,
                            "purpose": MARKETING,
                            "status": status,
                            "source": self.source,
                            "recorded_at": stamp,
                        }
                    )
                elif found[1] != status:
                    updates.append(
                        {
                            "id": found[0],
                            "status": status,
                            "source": self.source,
                            "recorded_at": stamp,
                        }
                    )
        bulk_insert(conn, table, inserts)
        bulk_update(conn, table, updates)


def import_rows(
    session: Session,
    rows: Iterable[tuple[int, dict[str, str]]],
    *,
    source: str = "import",
    region: str = "VN",
    batch_size: int = 2000,
    on_batch: Callable[[int], None] | None = None,
) -> ImportReport:
    """Upsert contacts from (row number, row dict) pairs; returns counts and row errors.

    `source` names the system the `external_id` column comes from (ContactIdentity.source)
    and is recorded as the consent source. After each batch is flushed, `on_batch(rows)`
    is called (the CLI commits there and advances its progress bar).
    """
    started = time.perf_counter()
    report = ImportReport()
    chunk: list[ParsedRow] = []
    seen = 0

    def flush() -> None:
        nonlocal seen
        batch = _Batch(session, source, report)
        batch.load(chunk)
        for parsed in chunk:
            batch.apply(parsed)
        batch.write()
        session.flush()
        if on_batch is not None:
            on_batch(report.rows - seen)
        seen = report.rows
        chunk.clear()

    for number, row in rows:
        report.rows += 1
        parsed, errors = parse_row(number, row, region)
        if parsed is None:
            report.failed += 1
            report.errors.extend(errors)
        else:
            chunk.append(parsed)
        if len(chunk) >= batch_size:
            flush()
    flush()
    report.seconds = time.perf_counter() - started
    return report


def write_error_report(report: ImportReport, path: Path) -> None:
    """Write the row errors as CSV (row, column, problem, fix) for fixing in a spreadsheet."""
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["row", "column", "problem", "fix"])
        writer.writeheader()
        for error in report.errors:
            writer.writerow(error.as_dict())
