"""`mactl contacts`: look a contact up, import contacts from CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin_cli.contact_ref import CONTACT_HELP, resolve_contact
from admin_cli.output import JSON, MAX_ROWS, console, load_settings, print_json, print_table
from automation.contacts.consent import history
from automation.contacts.reachability import channel_states
from automation.core.errors import InputError
from automation.core.models import (
    Consent,
    Contact,
    ContactIdentity,
    Event,
    Segment,
    SegmentMembership,
)
from automation.core.vocabulary import CONSENT_CHANNELS, DENIED, GRANTED

app = typer.Typer(
    name="contacts",
    help="Contacts: show one (identities, consent evidence, rollups, events), record a "
    "consent, import CSV, export or forget a person (personal data).",
)


def contact_details(session: Session, contact: Contact, events: int = 20) -> dict[str, Any]:
    """Everything an operator wants to see about one contact, as plain JSON-able data."""
    identities = session.scalars(
        select(ContactIdentity)
        .where(ContactIdentity.contact_id == contact.id)
        .order_by(ContactIdentity.source, ContactIdentity.external_id)
    )
    consents = session.scalars(
        select(Consent)
        .where(Consent.contact_id == contact.id)
        .order_by(Consent.channel, Consent.purpose)
    )
    evidence = history(session, contact.id)
    family = (
        session.scalars(
            select(Contact.id).where(Contact.phone == contact.phone, Contact.id != contact.id)
        ).all()
        if contact.phone
        else []
    )
    segments = session.scalars(
        select(Segment.key)
        .join(SegmentMembership, SegmentMembership.segment_id == Segment.id)
        .where(SegmentMembership.contact_id == contact.id, SegmentMembership.exited_at.is_(None))
        .order_by(Segment.key)
    )
    recent = session.scalars(
        select(Event)
        .where(Event.contact_id == contact.id)
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(events)
    )
    return {
        "contact": {
            "id": contact.id,
            "email": contact.email,
            "phone": contact.phone,
            "zalo_user_id": contact.zalo_user_id,
            "facebook_psid": contact.facebook_psid,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "locale": contact.locale,
            "timezone": contact.timezone,
            "attributes": contact.attributes or {},
            "tags": contact.tags or [],
            "created_at": contact.created_at,
            "updated_at": contact.updated_at,
        },
        "shares_phone_with": sorted(family),
        "identities": [{"source": i.source, "external_id": i.external_id} for i in identities],
        "consents": [
            {
                "channel": c.channel,
                "purpose": c.purpose,
                "status": c.status,
                "source": c.source,
                "recorded_at": c.recorded_at,
            }
            for c in consents
        ],
        "consent_evidence": [
            {
                "given_at": r.given_at,
                "channel": r.channel,
                "purpose": r.purpose,
                "status": r.status,
                "source": r.source,
                "method": r.method,
                "form": r.form,
                "address": r.address,
                "recorded_at": r.recorded_at,
            }
            for r in evidence
        ],
        "rollups": {
            "orders_count": contact.orders_count,
            "total_spent": contact.total_spent,
            "first_order_at": contact.first_order_at,
            "last_order_at": contact.last_order_at,
        },
        "segments": list(segments),
        "channels": channel_states(session, contact),
        "events": [event_summary(e) for e in recent],
    }


def event_summary(event: Event) -> dict[str, Any]:
    """One event as JSON-able data (shared with `mactl events list`)."""
    return {
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "source_event_id": event.source_event_id,
        "contact_id": event.contact_id,
        "occurred_at": event.occurred_at,
        "received_at": event.received_at,
        "processed_at": event.processed_at,
        "properties": (event.payload or {}).get("properties", {}),
    }


@app.command("show")
def show(
    ref: str = typer.Argument(..., metavar="CONTACT", help=CONTACT_HELP),
    events: int = typer.Option(20, min=0, max=MAX_ROWS, help="How many recent events to include."),
    as_json: bool = JSON,
) -> None:
    """Show a contact: identities, consents, channel states, rollups, segments, events.

    CONTACT is an id (42), a phone number (anything starting with 0 or +), an e-mail
    address, or one of them with an id:, phone: or email: prefix to force the kind.
    """
    from automation.core.db import session_scope

    settings = load_settings()
    with session_scope(settings) as session:
        found = resolve_contact(session, ref, where="CONTACT")
        details = contact_details(session, found, events)
    if as_json:
        print_json(details)
        return
    _print_details(details)


def _print_details(details: dict[str, Any]) -> None:
    contact, rollups = details["contact"], details["rollups"]
    name = " ".join(p for p in (contact["last_name"], contact["first_name"]) if p) or "-"
    out = console()
    out.print(f"[bold]Contact {contact['id']}[/bold]  {name}", highlight=False)
    for key in ("email", "phone", "zalo_user_id", "facebook_psid", "locale", "timezone"):
        if contact[key]:
            out.print(f"  {key}: {contact[key]}", highlight=False)
    if details["shares_phone_with"]:
        others = ", ".join(f"id:{i}" for i in details["shares_phone_with"])
        out.print(f"  shares the phone with: {others}", highlight=False)
    if contact["tags"]:
        out.print(f"  tags: {', '.join(contact['tags'])}", highlight=False)
    for key, value in contact["attributes"].items():
        out.print(f"  {key}: {value}", highlight=False)
    out.print(
        f"  orders: {rollups['orders_count']}  total spent: {rollups['total_spent']:,} VND"
        f"  last order: {rollups['last_order_at'] or '-'}",
        highlight=False,
    )
    if details["segments"]:
        out.print(f"  segments: {', '.join(details['segments'])}", highlight=False)
    if details["identities"]:
        print_table(
            "Identities",
            ["source", "external id"],
            [(i["source"], i["external_id"]) for i in details["identities"]],
        )
    print_table(
        "Consents",
        ["channel", "purpose", "status", "source", "recorded"],
        [
            (c["channel"], c["purpose"], c["status"], c["source"], c["recorded_at"])
            for c in details["consents"]
        ],
    )
    _print_evidence(details["consent_evidence"])
    print_table(
        "Channels",
        ["channel", "state", "why", "since"],
        [(c["channel"], c["state"], _why(c), c["since"] or "") for c in details["channels"]],
    )
    print_table(
        "Recent events",
        ["id", "occurred", "type", "source"],
        [(e["id"], e["occurred_at"], e["type"], e["source"]) for e in details["events"]],
    )


def _print_evidence(records: list[dict[str, Any]]) -> None:
    """One line per consent record (a wide table would truncate the form in 80 columns)."""
    out = console()
    if not records:
        out.print("Consent evidence: none (no consent recorded means no consent)")
        return
    out.print("[bold]Consent evidence[/bold] (oldest first)")
    for r in records:
        out.print(
            f"  {r['given_at']:%Y-%m-%d %H:%M} UTC  {r['channel']} {r['purpose']} {r['status']}"
            f"  via {r['source']}, {r['method']}",
            highlight=False,
            markup=False,
        )
        out.print(
            f"      for {r['address'] or '-'}; form: {r['form'] or '-'}",
            highlight=False,
            markup=False,
        )


@app.command("consent")
def consent(
    ref: str = typer.Argument(..., metavar="CONTACT", help=CONTACT_HELP),
    channel: str = typer.Argument(..., help="email, sms, zalo or messenger."),
    grant: bool = typer.Option(
        False, "--grant/--withdraw", help="Record a grant, or a withdrawal (the default)."
    ),
    purpose: str = typer.Option("marketing", help="marketing or transactional."),
    method: str = typer.Option(
        "operator", help="How the person told us: phone_call, paper_form, in_store, ..."
    ),
    form: str | None = typer.Option(
        None, help="The consent form's text or a reference to it (required with --grant)."
    ),
    as_json: bool = JSON,
) -> None:
    """Record a consent decision for a contact as evidence; it takes effect at once.

    A withdrawal needs nothing but the contact and channel. A grant needs --form: the
    text the person agreed to, or where it is kept (a paper form's number, a URL).
    """
    from automation.contacts.consent import check_key, record_consent
    from automation.core.db import session_scope

    check_key(channel, purpose, where="CHANNEL" if channel not in CONSENT_CHANNELS else "--purpose")
    if grant and not (form or "").strip():
        raise InputError(
            "a grant needs evidence", where="--form", fix="give the form's text or a reference"
        )
    settings = load_settings()
    with session_scope(settings) as session:
        found = resolve_contact(session, ref, where="CONTACT")
        record_consent(session, found, channel, purpose, grant, "mactl", method=method, form=form)
        contact_id = found.id
    status = GRANTED if grant else DENIED
    result = {"contact_id": contact_id, "channel": channel, "purpose": purpose, "status": status}
    if as_json:
        print_json(result)
        return
    console().print(
        f"contact {result['contact_id']}: {purpose} {channel} {result['status']}",
        highlight=False,
    )
def _why(state: dict[str, Any]) -> str:
    parts = [state["reason"]]
    if state["message_id"]:
        parts.append(f"message {state['message_id']}")
    return ", ".join(p for p in parts if p)


@app.command("import")
def import_csv(
    file: Path = typer.Argument(..., metavar="FILE.csv", help="UTF-8 CSV with a header row."),
    source: str = typer.Option(
        "import", help="System the external_id column belongs to (also the consent source)."
    ),
    errors_csv: Path | None = typer.Option(
        None, "--errors-csv", help="Also write the row errors to this CSV file."
    ),
    batch_size: int = typer.Option(2000, min=1, max=20000, help="Rows per database batch."),
    consent_form: str | None = typer.Option(
        None,
        "--consent-form",
        help="Where the consent columns come from (the form's text or a reference); "
        "recorded as evidence with each row number. Default: the file name.",
    ),
    as_json: bool = JSON,
) -> None:
    """Create or update contacts from a CSV file (re-importing updates, never duplicates).

    Columns: email, phone, first_name, last_name, external_id, zalo_user_id, facebook_psid,
    locale, timezone, tags (comma-separated, added), consent_email, consent_sms, consent_zalo,
    consent_messenger (yes/no, true/false, 1/0 -> marketing consent, recorded as evidence);
    any other column is stored as a custom attribute. A phone may be shared: a row with a
    new email on a known phone becomes a second contact (README: Contacts and consent).
    Empty cells leave stored values unchanged.
    Exit code 1 when some rows failed (they are listed with row number, column and fix).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from sqlalchemy.exc import IntegrityError

    from automation.contacts.importer import import_rows, read_csv, write_error_report
    from automation.core.clock import now
    from automation.core.db import session_factory
    from automation.segments.membership import refresh_all

    settings = load_settings()
    if not file.is_file():
        raise InputError("no such file", where=str(file), fix="give the path of a UTF-8 .csv file")
    total = _count_lines(file)
    session = session_factory(settings)()
    try:
        _, rows = read_csv(file)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console(),
            transient=True,
            disable=as_json,
        ) as progress:
            task = progress.add_task(f"importing {file.name}", total=total or None)

            def committed(count: int) -> None:
                session.commit()
                progress.advance(task, count)

            report = import_rows(
                session,
                rows,
                source=source,
                region=settings.default_region,
                batch_size=batch_size,
                on_batch=committed,
                form=consent_form or file.name,
            )
        # An import records no per-row events, so bring every segment up to date now;
        # the segment.entered/exited events it writes reach sequences like any other.
        segment_changes = refresh_all(session, now())
        session.commit()
    except IntegrityError as exc:
        raise InputError(
            f"the database refused a batch ({str(exc.orig).splitlines()[0]})",
            where=str(file),
            fix="contacts changed while importing? Re-run the import: it is safe to repeat",
        ) from None
    finally:
        session.rollback()
        session.close()
    if errors_csv is not None:
        write_error_report(report, errors_csv)
    changed = {
        key: {"entered": entered, "exited": exited}
        for key, (entered, exited) in segment_changes.items()
        if entered or exited
    }
    if as_json:
        print_json({**report.as_dict(), "segments": changed})
    else:
        _print_report(report, errors_csv)
        for key, counts in changed.items():
            console().print(f"segment {key}: +{counts['entered']} -{counts['exited']}")
    if report.failed:
        raise typer.Exit(1)


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return max(lines - 1, 0)


def _print_report(report: Any, errors_csv: Path | None, shown: int = 50) -> None:
    if report.errors:
        print_table(
            f"Row errors ({len(report.errors)})",
            ["row", "column", "problem", "fix"],
            [(e.row, e.column, e.problem, e.fix) for e in report.errors[:shown]],
        )
        if len(report.errors) > shown:
            hint = f"see {errors_csv}" if errors_csv else "use --errors-csv FILE for all of them"
            console().print(f"... {len(report.errors) - shown} more ({hint})", highlight=False)
    console().print(
        f"[bold]{report.rows}[/bold] rows: [green]{report.created} created[/green], "
        f"{report.updated} updated, "
        f"[{'red' if report.failed else 'green'}]{report.failed} failed[/] "
        f"in {report.seconds:.1f}s",
        highlight=False,
    )
