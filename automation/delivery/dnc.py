"""The national do-not-advertise list (Danh sách không quảng cáo, Decree 91 Art. 13).

Advertising to a listed number is fined up to 100 million VND (Decree 15/2020). The
list is loaded from a file (one phone per line, or a CSV with a ``phone`` column),
normalised to E.164; a re-import replaces it in one transaction. A marketing SMS or
Zalo message to a listed number is never sent: the send path skips it with reason
``dnc`` (and tries the step's fallback channel, e-mail for instance).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from automation.contacts.identity import AddressError, normalize_phone
from automation.core.clock import now
from automation.core.errors import InputError
from automation.core.models_sms import DncPhone
from automation.core.vocabulary import MARKETING
from automation.delivery.candidate import Candidate

REASON = "dnc"
#: Message channels an advertisement to a listed number is refused on.
CHANNELS = ("sms", "zalo_zns", "zalo_oa")
FIX = "one phone number per line, or a CSV file with a 'phone' column"


def read_file(path: Path) -> list[str]:
    """The E.164 numbers of a DNC file; InputError naming ``file:line`` for a bad one."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the file ({exc})", where=str(path), fix=FIX) from None
    lines = text.splitlines()
    first = lines[0] if lines else ""
    rows: Iterable[tuple[int, str]]
    if "," in first or first.strip().lower() == "phone":
        reader = csv.reader(io.StringIO(text))
        header = [h.strip().lower() for h in next(reader, [])]
        if "phone" not in header:
            raise InputError("no 'phone' column in the header", where=f"{path}:1", fix=FIX)
        column = header.index("phone")
        rows = ((n, row[column] if column < len(row) else "") for n, row in enumerate(reader, 2))
    else:
        rows = enumerate(lines, 1)
    phones: list[str] = []
    for number, value in rows:
        if not value.strip():
            continue
        try:
            phone = normalize_phone(value)
        except AddressError as exc:
            raise InputError(str(exc), where=f"{path}:{number}", fix=FIX) from None
        assert phone is not None
        phones.append(phone)
    return phones


def replace_list(
    session: Session,
    phones: list[str],
    progress: Callable[[int], None] | None = None,
    chunk: int = 5000,
) -> int:
    """Replace the whole list with ``phones`` (E.164); flushes, the caller commits."""
    unique = sorted(set(phones))
    session.execute(delete(DncPhone))
    stamp = now()
    for start in range(0, len(unique), chunk):
        part = unique[start : start + chunk]
        session.execute(
            insert(DncPhone), [{"phone": p, "imported_at": stamp} for p in part]
        )
        if progress:
            progress(len(part))
    session.flush()
    return len(unique)


def listed(session: Session, limit: int | None = None) -> list[str]:
    """The listed numbers, sorted."""
    stmt = select(DncPhone.phone).order_by(DncPhone.phone)
    return list(session.scalars(stmt.limit(limit) if limit else stmt))


def phones_to_check(items: list[Candidate]) -> dict[int, set[str]]:
    """Message id -> the phones (address, contact's phone) of each marketing SMS / Zalo row."""
    return {
        c.message.id: {p for p in (c.address, c.contact.phone) if p}
        for c in items
        if c.message.purpose == MARKETING and c.message.channel in CHANNELS
    }


def blocked_ids(phones_of: dict[int, set[str]], listed: set[str]) -> set[int]:
    """The message ids of :func:`phones_to_check` with a phone in ``listed`` (the list is
    read with the batch's other policy facts, automation.delivery.facts)."""
    return {mid for mid, phones in phones_of.items() if phones & listed}
