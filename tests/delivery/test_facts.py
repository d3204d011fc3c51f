"""The send-time policy reads a batch's facts in one statement (automation.delivery.facts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from automation.core.config import Settings
from automation.core.models import ChannelReachability, Suppression
from automation.delivery import dnc
from automation.delivery.candidate import Candidate
from automation.delivery.facts import load
from automation.delivery.policy import evaluate
from tests.delivery.helpers import consent, contact, message

NOON = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)  # 12:00 in Vietnam


def test_one_statement_loads_suppressions_marks_consents_phone_denials_and_dnc(
    session: Session, dsettings: Settings
) -> None:
    ok, suppressed, marked, family, sibling, listed = (contact(session, n) for n in range(1, 7))
    sibling.phone = family.phone  # one phone, two people: a denial by one holds for both
    for c in (ok, suppressed, marked, family, listed):
        consent(session, c, "sms")
    consent(session, sibling, "sms", status="denied")
    session.add(Suppression(channel="sms", address=suppressed.phone, reason="unsubscribed"))
    session.add(ChannelReachability(contact_id=marked.id, channel="sms", state="unreachable",
                                    reason="invalid number", address=marked.phone))
    dnc.replace_list(session, [listed.phone or ""])
    rows = [message(session, c, "sms", step=f"s{c.id}")
            for c in (ok, suppressed, marked, family, listed)]
    session.commit()
    items = [Candidate(m, c, c.phone) for m, c in
             zip(rows, (ok, suppressed, marked, family, listed), strict=True)]
    selects: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        selects.append(statement) if statement.lstrip().upper().startswith("SELECT") else None

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        facts = load(session, items, dsettings.secret_key)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(selects) == 1, selects
    assert facts.suppressed[("sms", suppressed.phone)].reason == "unsubscribed"
    assert facts.unreachable[(marked.id, "sms")].reason == "invalid number"
    assert facts.consents[(ok.id, "sms", "marketing")] == "granted"
    assert facts.consents[(family.id, "sms", "marketing")] == "denied"  # the sibling's denial
    assert facts.listed == {rows[4].id}
    decisions = evaluate(session, items, NOON, dsettings, facts=facts)
    assert [d.action for d in decisions] == ["send", "skip", "fail", "skip", "send"]
