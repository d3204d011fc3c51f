"""One CSV import row: the known columns, and validating and normalising a row.

Known columns map to contact fields, consent columns to marketing consent, `tags` to
tags (comma/semicolon separated), and any other column to a custom attribute. A row
with a problem is rejected whole, with one error per bad cell (row, column, fix).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from automation.contacts.identity import AddressError, normalize_email, normalize_phone
from automation.core.vocabulary import CONSENT_CHANNELS

ADDRESS_COLUMNS = ("email", "phone", "zalo_user_id", "facebook_psid")
ID_COLUMNS = ("external_id", *ADDRESS_COLUMNS)
NAME_COLUMNS = ("first_name", "last_name", "locale", "timezone")
CONSENT_COLUMNS = {f"consent_{channel}": channel for channel in CONSENT_CHANNELS}
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
#: Key of the marker `read_csv` adds to a row whose cell count differs from the header.
CELLS_MARKER = "__cells__"

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
class ParsedRow:
    """A validated, normalised row."""

    row: int
    ids: dict[str, str]
    fields: dict[str, str]
    attributes: dict[str, str]
    tags: list[str]
    consents: dict[str, bool]


def parse_row(
    number: int, row: dict[str, str], region: str = "VN"
) -> tuple[ParsedRow | None, list[RowError]]:
    """Validate and normalise one row; returns the parsed row or the errors found in it."""
    if CELLS_MARKER in row:
        cells, columns = row[CELLS_MARKER].split("/")
        return None, [
            RowError(
                number,
                "*",
                f"row has {cells} cells but the header has {columns} columns",
                "check for a missing or extra comma, or quote cells that contain commas",
            )
        ]
    parsed = ParsedRow(number, {}, {}, {}, [], {})
    errors = [
        error
        for column, raw in row.items()
        if (value := (raw or "").strip())
        and (error := _parse_cell(parsed, column, value, region)) is not None
    ]
    if errors:
        return None, errors
    parsed.ids = {key: value for key, value in parsed.ids.items() if value}
    if not parsed.ids:
        return None, [
            RowError(
                number,
                "email",
                "nothing identifies this contact",
                "fill at least one of email, phone, external_id, zalo_user_id, facebook_psid",
            )
        ]
    return parsed, []


def _parse_cell(parsed: ParsedRow, column: str, value: str, region: str) -> RowError | None:
    """Store one non-empty cell into ``parsed``; the error when the cell is unusable."""
    number = parsed.row
    if "\x00" in value:
        return RowError(
            number, column, "contains a NUL character (\\0)", "delete the stray character"
        )
    limit = MAX_LENGTH.get(column)
    if limit is not None and len(value) > limit:
        return RowError(number, column, f"longer than {limit} characters", "shorten it")
    if column == "email":
        try:
            parsed.ids["email"] = normalize_email(value) or ""
        except AddressError:
            return RowError(
                number,
                column,
                f"not an email address: {value!r}",
                "correct it (name@example.com) or leave the cell empty",
            )
    elif column == "phone":
        try:
            parsed.ids["phone"] = fast_phone(value, region)
        except AddressError:
            return RowError(
                number,
                column,
                f"not a valid phone number: {value!r}",
                "write a Vietnamese number like 0912 345 678 or an international one "
                "like +84912345678, or leave the cell empty",
            )
    elif column in ID_COLUMNS:
        parsed.ids[column] = value
    elif column == "locale":
        if not LOCALE_RE.match(value):
            return RowError(number, column, f"not a locale: {value!r}", "use vi or en")
        parsed.fields["locale"] = value.replace("_", "-")
    elif column == "timezone":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            return RowError(
                number,
                column,
                f"unknown timezone: {value!r}",
                "use an IANA name such as Asia/Ho_Chi_Minh",
            )
        parsed.fields["timezone"] = value
    elif column in CONSENT_COLUMNS:
        flag = value.lower()
        if flag not in YES and flag not in NO:
            return RowError(
                number,
                column,
                f"not a yes/no value: {value!r}",
                "use yes/no, true/false or 1/0 (empty = unchanged)",
            )
        parsed.consents[CONSENT_COLUMNS[column]] = flag in YES
    elif column == "tags":
        parsed.tags = [t.strip() for t in re.split(r"[,;|]", value) if t.strip()]
    elif column in NAME_COLUMNS:
        parsed.fields[column] = value
    else:
        parsed.attributes[column] = value
    return None
