"""Bulk contact import: upsert parsed CSV rows in batches, report per-row errors.

Rows come from ``csvfile.read_csv`` and are validated by ``rows.parse_row``. Empty
cells never erase stored values. Each batch is resolved with a few bulk lookups and
written with bulk inserts/updates (SQLAlchemy Core), so 100k rows take seconds.

Rows follow the identity rule of ``contacts.identity``: a row is matched by
external_id (per source), email, Zalo user id or Facebook PSID; if these point at two
different contacts, or a Zalo/Facebook id belongs to a contact with another email, the
row is rejected: we never merge two people on a guess. A phone alone links to a contact
on that phone only when it has no other email and no other external_id; otherwise the
row becomes a new contact sharing the phone. A phone-only link fills blank names but
never replaces them, and consents stay with the contact the row is about.
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

from automation.contacts.bulk import allocate_ids, bulk_insert, bulk_update
from automation.contacts.consent import ADDRESS_COLUMN, Choice, record_many
from automation.contacts.csvfile import ImportFileError, read_csv
from automation.contacts.identity import pick_by_name
from automation.contacts.rows import (
    ADDRESS_COLUMNS,
    ID_COLUMNS,
    NAME_COLUMNS,
    ParsedRow,
    RowError,
    parse_row,
)
from automation.core.clock import now
from automation.core.db import one_of
from automation.core.models import Contact, ContactIdentity
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
#: Identifiers that belong to one person only (the phone may be shared).
UNIQUE_IDS = tuple(name for name in ID_COLUMNS if name != "phone")
CONTACTS: Table = Contact.__table__  # type: ignore[assignment]
IMPORT_METHOD = "import"
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
    consent_rows: dict[str, int] = field(default_factory=dict)
    touched: bool = False

    def names(self) -> tuple[str | None, str | None]:
        """(first name, last name), for pick_by_name."""
        return self.values["first_name"], self.values["last_name"]


class _Batch:
    """Resolve and write one chunk of parsed rows with bulk statements."""

    def __init__(self, session: Session, source: str, report: ImportReport, form: str) -> None:
        self.session = session
        self.source = source
        self.form = form
        self.report = report
        self.drafts: list[_Draft] = []
        self.index: dict[tuple[str, str], _Draft] = {}  # unique identifiers
        self.phones: dict[str, list[_Draft]] = {}  # phone -> contacts on it, oldest first
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
        query = select(*columns).where(or_(*conditions)).order_by(table.c.id)
        for record in self.session.execute(query).mappings():
            draft = _Draft(values={name: record[name] for name in CONTACT_FIELDS}, id=record["id"])
            draft.values["attributes"] = dict(draft.values["attributes"] or {})
            draft.values["tags"] = list(draft.values["tags"] or [])
            self.drafts.append(draft)
            for name in UNIQUE_IDS[1:]:
                if draft.values[name]:
                    self.index[(name, draft.values[name])] = draft
            if draft.values["phone"]:
                self.phones.setdefault(draft.values["phone"], []).append(draft)
        self._load_identities(conn)

    def _load_identities(self, conn: Connection) -> None:
        """Every external_id at this source of the loaded contacts (conflicts need them all)."""
        by_id = {draft.id: draft for draft in self.drafts}
        if not by_id:
            return
        for contact_id, external_id in self.session.execute(
            select(ContactIdentity.contact_id, ContactIdentity.external_id).where(
                ContactIdentity.source == self.source,
                one_of(conn, ContactIdentity.contact_id, by_id),
            )
        ):
            by_id[contact_id].external_ids.add(external_id)
            self.index[("external_id", external_id)] = by_id[contact_id]

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
        for name in UNIQUE_IDS:
            draft = self.index.get((name, row.ids.get(name, "")))
            if draft is not None:
                matches.setdefault(id(draft), (name, draft))
        problem = self._conflict(row, list(matches.values()))
        if problem is not None:
            self.report.failed += 1
            self.report.errors.append(problem)
            return
        weak = False
        if matches:
            draft = next(iter(matches.values()))[1]
        else:
            draft, weak = self._by_phone(row), True
        if draft is None:
            draft = _Draft(values={name: None for name in CONTACT_FIELDS})
            draft.values["attributes"], draft.values["tags"] = {}, []
            self.drafts.append(draft)
            self.report.created += 1
            weak = False
        else:
            self.report.updated += 1
        self._merge(draft, row, weak)

    def _conflict(self, row: ParsedRow, matches: list[tuple[str, _Draft]]) -> RowError | None:
        """The error when the row's unique identifiers belong to two different people."""
        fix = "correct the row, or import the two people on separate rows"
        if len(matches) > 1:
            (first, _), (second, _) = matches[:2]
            return RowError(
                row.row,
                second,
                f"{second} {row.ids[second]!r} belongs to a different contact than "
                f"{first} {row.ids[first]!r}",
                fix,
            )
        if matches and "email" in row.ids:
            name, draft = matches[0]
            if draft.values["email"] not in (None, row.ids["email"]):
                return RowError(
                    row.row,
                    name,
                    f"{name} {row.ids[name]!r} belongs to a contact with another email",
                    fix,
                )
        return None

    def _by_phone(self, row: ParsedRow) -> _Draft | None:
        """A contact on the row's phone that may be the same person (identity rule)."""
        email, external_id = row.ids.get("email"), row.ids.get("external_id")
        candidates = [
            d
            for d in self.phones.get(row.ids.get("phone", ""), [])
            if (not email or not d.values["email"]) and (not external_id or not d.external_ids)
        ]
        if not candidates:
            return None
        first, last = row.fields.get("first_name"), row.fields.get("last_name")
        return pick_by_name(candidates, _Draft.names, first, last)

    def _merge(self, draft: _Draft, row: ParsedRow, weak: bool) -> None:
        """Write the row's values into its contact; a phone-only link only fills blanks."""
        draft.touched = True
        for name in ADDRESS_COLUMNS:
            address = row.ids.get(name)
            previous = draft.values[name]
            if not address or previous == address:
                continue
            draft.values[name] = address
            if name == "phone":
                if previous:
                    self.phones[previous].remove(draft)
                self.phones.setdefault(address, []).append(draft)
            else:
                if previous:
                    self.index.pop((name, previous), None)
                self.index[(name, address)] = draft
        if "external_id" in row.ids:
            draft.external_ids.add(row.ids["external_id"])
            self.index[("external_id", row.ids["external_id"])] = draft
        for name, value in row.fields.items():
            if not weak or not draft.values[name]:
                draft.values[name] = value
        if row.attributes:
            draft.values["attributes"] = {**draft.values["attributes"], **row.attributes}
        for tag in row.tags:
            if tag not in draft.values["tags"]:
                draft.values["tags"] = [*draft.values["tags"], tag]
        draft.consents.update(row.consents)
        draft.consent_rows.update({channel: row.row for channel in row.consents})

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
        choices = [
            Choice(
                contact_id=draft.id or 0,
                channel=channel,
                purpose=MARKETING,
                granted=granted,
                address=draft.values[ADDRESS_COLUMN[channel]],
                form=f"{self.form}, row {draft.consent_rows[channel]}, column consent_{channel}",
            )
            for draft in drafts
            for channel, granted in draft.consents.items()
        ]
        record_many(conn, choices, self.source, IMPORT_METHOD, stamp)


def import_rows(
    session: Session,
    rows: Iterable[tuple[int, dict[str, str]]],
    *,
    source: str = "import",
    region: str = "VN",
    batch_size: int = 2000,
    on_batch: Callable[[int], None] | None = None,
    form: str = "CSV import",
) -> ImportReport:
    """Upsert contacts from (row number, row dict) pairs; returns counts and row errors.

    `source` names the system the `external_id` column comes from (ContactIdentity.source)
    and is recorded as the consent source; `form` names the consent form or file the
    consent columns come from (evidence: each record adds its row and column). After each
    batch is flushed, `on_batch(rows)` is called (the CLI commits there and advances its
    progress bar).
    """
    started = time.perf_counter()
    report = ImportReport()
    chunk: list[ParsedRow] = []
    seen = 0

    def flush() -> None:
        nonlocal seen
        batch = _Batch(session, source, report, form)
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
