"""`mactl contacts export | forget`: a person's data out, or erased (Law 91/2025/QH15).

The two commands join the `contacts` group (admin_cli.contacts_cmd.app) when this
module is imported by admin_cli.main. Both are written to the audit log with the
contact's id only: never the reference typed, which may be an address.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from admin_cli.contact_ref import CONTACT_HELP, resolve_contact
from admin_cli.contacts_cmd import app
from admin_cli.output import JSON, console, json_text, load_settings, print_json
from automation.core.db import session_scope
from automation.core.errors import InputError
from automation.privacy import audit
from automation.privacy.export import export_contact
from automation.privacy.forget import forget_contact


@app.command("export")
def export_cmd(
    ref: str = typer.Argument(..., metavar="CONTACT", help=CONTACT_HELP),
    out: Path | None = typer.Option(
        None, "--out", help="Write the JSON to this file (mode 600) instead of stdout."
    ),
) -> None:
    """Write everything held about a contact as JSON (contact, consents, events, messages...)."""
    settings = load_settings()
    with session_scope(settings) as session:
        contact = resolve_contact(session, ref, where="CONTACT")
        data = export_contact(session, contact)
        audit.record(
            session,
            "export",
            f"contact:{contact.id}",
            {"out": str(out) if out else "stdout", "rows": _count(data)},
        )
        text = json_text(data)
        if out is None:
            typer.echo(text)
            return
        _write_private(out, text)
    console().print(f"exported contact {data['contact']['id']} to {out}", highlight=False)


def _count(data: dict[str, object]) -> int:
    return sum(len(v) for v in data.values() if isinstance(v, list))


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only."""
    if path.is_dir():
        raise InputError("is a folder", where=str(path), fix="give a file name for --out")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")


@app.command("forget")
def forget_cmd(
    ref: str = typer.Argument(..., metavar="CONTACT", help=CONTACT_HELP),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = JSON,
) -> None:
    """Erase a contact's personal data; keep anonymous counts and a keyed hash of each address.

    Erased: addresses, names, attributes, identities, consents, message bodies and
    addresses, personal fields of events, raw webhook payloads naming the person. The
    addresses' keyed hashes stay on the suppression list: they are never messaged again.
    """
    settings = load_settings()
    with session_scope(settings) as session:
        contact = resolve_contact(session, ref, where="CONTACT")
        if not yes and not typer.confirm(
            f"Erase the personal data of contact {contact.id}? This cannot be undone"
        ):
            raise InputError("nothing erased", where="forget", fix="answer y, or pass --yes")
        erasure = forget_contact(session, contact)
        audit.record(session, "forget", f"contact:{contact.id}", {"counts": erasure.counts})
        result = {
            "contact_id": contact.id,
            "erased_at": erasure.erased_at,
            "counts": erasure.counts,
        }
    if as_json:
        print_json(result)
        return
    counts = ", ".join(f"{k}={v}" for k, v in result["counts"].items())
    console().print(f"erased contact {contact.id} ({counts})", highlight=False)
