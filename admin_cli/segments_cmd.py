"""`mactl segments`: list segments, preview who matches now, explain one contact's verdict."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin_cli.contact_ref import CONTACT_HELP, contact_label, resolve_contact
from admin_cli.output import (
    JSON,
    MAX_ROWS,
    console,
    get_by_key,
    load_settings,
    print_json,
    print_table,
)
from automation.core.clock import now
from automation.core.db import session_scope
from automation.core.models import Contact, Segment, SegmentMembership

app = typer.Typer(
    name="segments", help="Segments: list, preview members, explain why a contact is in or out."
)


def get_segment(session: Session, key: str) -> Segment:
    """The segment with ``key``; NotFound naming the applied keys otherwise."""
    row: Segment = get_by_key(session, Segment, key, "segment")
    return row


def list_segments(session: Session) -> list[dict[str, Any]]:
    """Every segment with its stored member count."""
    counts = dict(
        session.execute(
            select(SegmentMembership.segment_id, func.count())
            .where(SegmentMembership.exited_at.is_(None))
            .group_by(SegmentMembership.segment_id)
        ).all()
    )
    return [
        {
            "key": s.key,
            "name": s.name,
            "members": int(counts.get(s.id, 0)),
            "time_based": s.time_based,
            "refreshed_at": s.refreshed_at,
            "updated_at": s.updated_at,
        }
        for s in session.scalars(select(Segment).order_by(Segment.key))
    ]


def preview_segment(session: Session, key: str, limit: int) -> dict[str, Any]:
    """How many contacts match now (SQL evaluation) and a sample of them."""
    from automation.segments.compile import compile_rule
    from automation.segments.store import rule_of

    segment = get_segment(session, key)
    at = now()
    ids = compile_rule(rule_of(segment), at).subquery()
    count = int(session.scalar(select(func.count()).select_from(ids)) or 0)
    stored = int(
        session.scalar(
            select(func.count())
            .select_from(SegmentMembership)
            .where(
                SegmentMembership.segment_id == segment.id,
                SegmentMembership.exited_at.is_(None),
            )
        )
        or 0
    )
    sample = session.scalars(
        select(Contact).where(Contact.id.in_(select(ids.c[0]))).order_by(Contact.id).limit(limit)
    ).all()
    return {
        "key": segment.key,
        "name": segment.name,
        "at": at,
        "count": count,
        "stored_members": stored,
        "sample": [
            {
                "id": c.id,
                "name": " ".join(p for p in (c.last_name, c.first_name) if p) or None,
                "email": c.email,
                "phone": c.phone,
                "orders_count": c.orders_count,
                "total_spent": c.total_spent,
                "last_order_at": c.last_order_at,
            }
            for c in sample
        ],
    }


@app.command("list")
def list_cmd(as_json: bool = JSON) -> None:
    """List segments with their current member counts."""
    load_settings()
    with session_scope() as session:
        rows = list_segments(session)
    if as_json:
        print_json(rows)
        return
    print_table(
        "Segments",
        ["key", "name", "members", "time-based", "refreshed"],
        [[r["key"], r["name"], r["members"], r["time_based"], r["refreshed_at"]] for r in rows],
    )


@app.command("preview")
def preview_cmd(
    key: str = typer.Argument(..., help="Segment key, e.g. lapsed_90d."),
    limit: int = typer.Option(10, "--limit", min=0, max=MAX_ROWS, help="Sample size."),
    as_json: bool = JSON,
) -> None:
    """Count who matches the segment right now and show a sample of members."""
    load_settings()
    with session_scope() as session:
        data = preview_segment(session, key, limit)
    if as_json:
        print_json(data)
        return
    console().print(
        f"{data['key']} ({data['name']}): {data['count']} contacts match now, "
        f"{data['stored_members']} stored members",
        markup=False,
    )
    print_table(
        "Sample",
        ["id", "name", "email", "phone", "orders", "spent (VND)", "last order"],
        [
            [
                s["id"],
                s["name"],
                s["email"],
                s["phone"],
                s["orders_count"],
                s["total_spent"],
                s["last_order_at"],
            ]
            for s in data["sample"]
        ],
    )


def _tree_rows(node: dict[str, Any], depth: int, rows: list[list[Any]]) -> None:
    mark = "✔" if node["result"] else "✘"
    rows.append([f"{'  ' * depth}{node['rule']}", mark, node.get("value")])
    for child in node.get("children", []):
        _tree_rows(child, depth + 1, rows)


@app.command("explain")
def explain_cmd(
    key: str = typer.Argument(..., help="Segment key."),
    contact: str = typer.Option(..., "--contact", metavar="CONTACT", help=CONTACT_HELP),
    as_json: bool = JSON,
) -> None:
    """Explain why a contact is or is not in a segment: every rule node with its value."""
    from automation.segments.explain import explain

    load_settings()
    with session_scope() as session:
        segment = get_segment(session, key)
        person = resolve_contact(session, contact)
        label = contact_label(person)
        result = explain(session, segment, person.id, now())
    data = {**result.to_dict(), "contact": label}
    if as_json:
        print_json(data)
        return
    verdict = "IS in" if result.matches else "is NOT in"
    console().print(f"{label} {verdict} {result.segment}", markup=False)
    if result.member != result.matches:
        console().print(
            f"(stored membership says {'member' if result.member else 'not a member'}; "
            "it is updated on the contact's next event or the next scheduler pass)",
            markup=False,
        )
    rows: list[list[Any]] = []
    _tree_rows(data["tree"], 0, rows)
    print_table(None, ["rule", "", "value"], rows)
