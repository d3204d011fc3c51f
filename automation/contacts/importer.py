"""Bulk contact import from CSV rows: normalise, validate, upsert in batches.

Rows are dicts keyed by header name. Known columns map to contact fields, consent
columns to marketing consent, `tags` to tags (comma/semicolon separated, added to
existing ones), and any other column to a custom attribute. Empty cells never
erase stored values. Each batch is resolved with a few bulk lookups and written
with bulk inserts/updates (SQLAlchemy Core), so 100k rows take seconds.

A row is matched to one stored contact by external_id (per source), email,
phone, Zalo user id or Facebook PSID. If its identifiers point at two different
contacts the row is rejected: we never merge two people on a guess.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Table, or_, select
from sqlalchemy.orm import Session

from automation.contacts.bulk import allocate_ids, bulk_insert, bulk_update, one_of
from automation.contacts.identity import AddressError, normalize_email, normalize_phone
from automation.core.clock import now
from automation.core.models import Consent, Contact, ContactIdentity

ADDRESS_COLUMNS = ("email", "phone", "zalo_user_id", "facebook_psid")
ID_COLUMNS = ("external_id", *ADDRESS_COLUMNS)
NAME_COLUMNS = ("first_name", "last_name", "locale", "timezone")
CONSENT_COLUMNS = {
    "consent_email": "email",
    "consent_sms": "sms",
    "consent_zalo": "zalo",
    "consent_messenger": "messenger",
}
KNOWN_COLUMNS = frozenset((*ID_COLUMNS, *NAME_COLUMNS, *CONSENT_COLUMNS, "tags"))
MAX_LENGTH = {
    "external_id": 128,
    "email": 320,
    "zalo_user_id": 64,
    "facebook_psid": 64,
    "first_name": 120,
    "last_name": 120,
    "locale": 16,
    "timezone": 64,
}
YES = frozenset({"yes", "y", "true", "1", "co", "có", "x"})
NO = frozenset({"no", "n", "false", "0", "khong", "không"})
LOCALE_RE = re.compile(r"^[a-z]{2,3}([-_][A-Za-z]{2,4})?$")
ATTRIBUTE_RE = re.compile(r"^[^\W\d]\w{0,63}$")
CONTACT_FIELDS = (*ADDRESS_COLUMNS, *NAME_COLUMNS, "attributes", "tags")
CONTACTS: Table = Contact.__table__  # type: ignore[assignment]
CONSENTS: Table = Consent.__table__  # type: ignore[assignment]
IDENTITIES: Table = ContactIdentity.__table__  # type: ignore[assignment]


_SEPARATORS = re.compile(r"[\s.\-()]")
_VN_MOBILE = re.compile(r"(?:\+84|84|0)([1-9]\d{8})")
_vn_prefix_valid: dict[str, bool | None] = {}


def fast_phone(value: str, region: str) -> str:
    """normalize_phone with a shortcut for 9-digit Vietnamese numbers (the bulk of a file).

    Validity of such numbers depends only on their first three national digits, so it is
    decided once per prefix by `normalize_phone` itself; anything else takes the full path.
    """
    if region == "VN":
        match = _VN_MOBILE.fullmatch(_SEPARATORS.sub("", value))
        if match is not None:
            national = match.group(1)
            prefix = national[:3]
            if prefix not in _vn_prefix_valid:
                samples = []
                for tail in ("000000", "999999", "505050"):
                    try:
                        samples.append(normalize_phone("0" + prefix + tail, "VN") is not None)
                    except AddressError:
                        samples.append(False)
                _vn_prefix_valid[prefix] = samples[0] if len(set(samples)) == 1 else None
            verdict = _vn_prefix_valid[prefix]
            if verdict is True:
                return "+84" + national
            if verdict is False:
                raise AddressError(f"not a valid phone number: {value!r}")
    return normalize_phone(value, region) or ""


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (bad header, encoding); names the fix."""


@dataclass
class RowError:
    """One problem with one row: where it is, what is wrong, how to fix it."""

    row: int
    column: str
    problem: str
    fix: str

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and CSV reports."""
        return {"row": self.row, "column": self.column, "problem": self.problem, "fix": self.fix}


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
class _Parsed:
    """A validated row."""

    row: int
    ids: dict[str, str]
    fields: dict[str, str]
    attributes: dict[str, str]
    tags: list[str]
    consents: dict[str, bool]


@dataclass
class _Draft:
    """A contact being written in this batch (existing: id set; new: id None until insert)."""

    values: dict[str, Any]
    id: int | None = None
    external_ids: set[str] = field(default_factory=set)
    consents: dict[str, bool] = field(default_factory=dict)
    touched: bool = False


def normalize_header(name: str) -> str:
    """`First Name ` -> `first_name` (lower case, spaces and dashes to underscores)."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def check_header(header: list[str], where: str) -> list[str]:
    """Validate and normalise a CSV header; ImportFileError with the fix when unusable."""
    names = [normalize_header(h) for h in header]
    if not any(names):
        raise ImportFileError(f"{where}: the file is empty; the first line must be a header")
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        if not name:
            raise ImportFileError(f"{where}: header column {position} is empty; give it a name")
        if name in seen:
            raise ImportFileError(f"{where}: header column {name!r} appears twice; keep one")
        if name not in KNOWN_COLUMNS and not ATTRIBUTE_RE.match(name):
            raise ImportFileError(
                f"{where}: header column {name!r} is not a valid attribute name; "
                "use letters, digits and underscores, starting with a letter"
            )
        seen.add(name)
    if not seen & set(ID_COLUMNS):
        raise ImportFileError(
            f"{where}: no identifying column; the header needs at least one of "
            + ", ".join(ID_COLUMNS)
        )
    return names


def read_csv(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Open a UTF-8 CSV (BOM allowed); returns the normalised header and (row number, row) pairs.

    Row numbers count lines as a spreadsheet shows them: the header is row 1.
    """
    where = str(path)
    handle = path.open(encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(handle)
        header = check_header(next(reader, []), where)
    except UnicodeDecodeError:
        handle.close()
        raise ImportFileError(
            f"{where}: the file is not UTF-8; save it as 'CSV UTF-8' and retry"
        ) from None
    except BaseException:
        handle.close()
        raise

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with handle:
            try:
                for number, cells in enumerate(reader, start=2):
                    if not any(cell.strip() for cell in cells):
                        continue
                    if len(cells) > len(header) and not any(c.strip() for c in cells[len(header):]):
                        cells = cells[: len(header)]
                    row = dict(zip(header, cells, strict=False))
                    if len(cells) != len(header):
                        row["__cells__"] = f"{len(cells)}/{len(header)}"
                    yield number, row
            except UnicodeDecodeError:
                raise ImportFileError(
                    f"{where}: the file is not UTF-8; save it as 'CSV UTF-8' and retry"
                ) from None
            except csv.Error as exc:
                raise ImportFileError(f"{where}: line {reader.line_num}: {exc}") from None

    return header, rows()


def parse_row(
    number: int, row: dict[str, str], region: str = "VN"
) -> tuple[_Parsed | None, list[RowError]]:
    """Validate and normalise one row; returns the parsed row or the errors found in it."""
    errors: list[RowError] = []
    if "__cells__" in row:
        cells, columns = row["__cells__"].split("/")
        errors.append(
            RowError(
                number,
                "*",
                f"row has {cells} cells but the header has {columns} columns",
                "check for a missing or extra comma, or quote cells that contain commas",
            )
        )
        return None, errors
    ids: dict[str, str] = {}
    fields: dict[str, str] = {}
    attributes: dict[str, str] = {}
    consents: dict[str, bool] = {}
    tags: list[str] = []
    for column, raw in row.items():
        value = (raw or "").strip()
        if not value:
            continue
        limit = MAX_LENGTH.get(column)
        if limit is not None and len(value) > limit:
            errors.append(
                RowError(number, column, f"longer than {limit} characters", "shorten it")
            )
            continue
        if column == "email":
            try:
                ids["email"] = normalize_email(value) or ""
            except AddressError:
                errors.append(
                    RowError(
                        number,
                        column,
                        f"not an email address: {value!r}",
                        "correct it (name@example.com) or leave the cell empty",
                    )
                )
        elif column == "phone":
            try:
                ids["phone"] = fast_phone(value, region)
            except AddressError:
                errors.append(
                    RowError(
                        number,
                        column,
                        f"not a valid phone number: {value!r}",
                        "write a Vietnamese number like 0912 345 678 or an international one "
                        "like +84912345678, or leave the cell empty",
                    )
                )
        elif column in ("external_id", "zalo_user_id", "facebook_psid"):
            ids[column] = value
        elif column == "locale":
            if LOCALE_RE.match(value):
                fields["locale"] = value.replace("_", "-")
            else:
                errors.append(
                    RowError(number, column, f"not a locale: {value!r}", "use vi or en")
                )
        elif column == "timezone":
            try:
                ZoneInfo(value)
                fields["timezone"] = value
            except (ZoneInfoNotFoundError, ValueError):
                errors.append(
                    RowError(
                        number,
                        column,
                        f"unknown timezone: {value!r}",
                        "use an IANA name such as Asia/Ho_Chi_Minh",
                    )
                )
        elif column in CONSENT_COLUMNS:
            flag = value.lower()
            if flag in YES or flag in NO:
                consents[CONSENT_COLUMNS[column]] = flag in YES
            else:
                errors.append(
                    RowError(
                        number,
                        column,
                        f"not a yes/no value: {value!r}",
                        "use yes/no, true/false or 1/0 (empty = unchanged)",
                    )
                )
        elif column == "tags":
            tags = [t.strip() for t in re.split(r"[,;|]", value) if t.strip()]
        elif column in NAME_COLUMNS:
            fields[column] = value
        else:
            attributes[column] = value
    if errors:
        return None, errors
    ids = {key: value for key, value in ids.items() if value}
    if not ids:
        return None, [
            RowError(
                number,
                "email",
                "nothing identifies this contact",
                "fill at least one of email, phone, external_id, zalo_user_id, facebook_psid",
            )
        ]
    return _Parsed(number, ids, fields, attributes, tags, consents), []


class _Batch:
    """Resolve and write one chunk of parsed rows with bulk statements."""

    def __init__(self, session: Session, source: str, report: ImportReport) -> None:
        self.session = session
        self.source = source
        self.report = report
        self.drafts: list[_Draft] = []
        self.index: dict[tuple[str, str], _Draft] = {}

    def load(self, parsed: list[_Parsed]) -> None:
        """Fetch every stored contact any row of the batch may refer to."""
        wanted: dict[str, set[str]] = {name: set() for name in ID_COLUMNS}
        for row in parsed:
            for name, value in row.ids.items():
                wanted[name].add(value)
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

    def apply(self, row: _Parsed) -> None:
        """Merge one row into its contact (found, or new); records a conflict as a row error."""
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
                    table.c.purpose == "marketing",
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
                            "purpose": "marketing",
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
    chunk: list[_Parsed] = []
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
