"""Reading a contact CSV file: encoding, header, and (row number, row) pairs.

A problem with the file as a whole (encoding, header, broken quoting) is an
``ImportFileError`` naming the file and the fix; problems with one row are left to
``automation.contacts.rows``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from automation.contacts.rows import ATTRIBUTE_RE, CELLS_MARKER, ID_COLUMNS, KNOWN_COLUMNS
from automation.core.errors import InputError

NOT_UTF8 = "the file is not UTF-8"
SAVE_AS_UTF8 = "save it as 'CSV UTF-8' and retry"


class ImportFileError(InputError):
    """The file as a whole cannot be imported (bad header, encoding); names the fix."""


def normalize_header(name: str) -> str:
    """`First Name ` -> `first_name` (lower case, spaces and dashes to underscores)."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def check_header(header: list[str], where: str) -> list[str]:
    """Validate and normalise a CSV header; ImportFileError with the fix when unusable."""
    names = [normalize_header(h) for h in header]
    if not any(names):
        raise ImportFileError(
            "the file is empty", where=where, fix="the first line must be a header"
        )
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        if not name:
            raise ImportFileError(
                f"header column {position} is empty", where=where, fix="give it a name"
            )
        if name in seen:
            raise ImportFileError(
                f"header column {name!r} appears twice", where=where, fix="keep one"
            )
        if name not in KNOWN_COLUMNS and not ATTRIBUTE_RE.match(name):
            raise ImportFileError(
                f"header column {name!r} is not a valid attribute name",
                where=where,
                fix="use letters, digits and underscores, starting with a letter",
            )
        seen.add(name)
    if not seen & set(ID_COLUMNS):
        raise ImportFileError(
            "no identifying column",
            where=where,
            fix="the header needs at least one of " + ", ".join(ID_COLUMNS),
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
        raise ImportFileError(NOT_UTF8, where=where, fix=SAVE_AS_UTF8) from None
    except BaseException:
        handle.close()
        raise

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with handle:
            try:
                for number, cells in enumerate(reader, start=2):
                    if not any(cell.strip() for cell in cells):
                        continue
                    if len(cells) > len(header) and not any(
                        c.strip() for c in cells[len(header) :]
                    ):
                        cells = cells[: len(header)]
                    row = dict(zip(header, cells, strict=False))
                    if len(cells) != len(header):
                        row[CELLS_MARKER] = f"{len(cells)}/{len(header)}"
                    yield number, row
            except UnicodeDecodeError:
                raise ImportFileError(NOT_UTF8, where=where, fix=SAVE_AS_UTF8) from None
            except csv.Error as exc:
                raise ImportFileError(
                    str(exc),
                    where=f"{where}:{reader.line_num}",
                    fix="check the quoting around this line",
                ) from None

    return header, rows()
