"""Apply verified provider callbacks: find our message, map the provider's status, record it.

One plain function per provider, taking a Session and the parsed callback; the routes in
callbacks.py only authenticate. Unknown messages are counted as ``ignored`` and logged.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.clock import now
from automation.core.models import Contact, Message
from automation.feedback import results as feedback

log = logging.getLogger(__name__)

TWILIO_STATUS = {"sent": "sent", "delivered": "delivered", "undelivered": "failed",
                 "failed": "failed", "read": "read"}
#: Twilio error codes that mean the number can never receive SMS from us.
TWILIO_BAD_NUMBER = frozenset({"21211", "21614", "30005", "30006"})
TWILIO_OPTED_OUT = "21610"
MAILGUN_MESSAGE_ID = re.compile(r"<?msg-(\d+)@")


@dataclass
class Outcome:
    """Counts for the HTTP answer and the new canonical event ids to process."""

    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    event_ids: list[int] = field(default_factory=list)

    def add(self, result: feedback.FeedbackResult) -> None:
        """Count one feedback result."""
        if result.duplicate:
            self.duplicates += 1
        else:
            self.applied += 1
            self.event_ids.extend(result.event_ids)

    def answer(self) -> dict[str, int]:
        """The JSON body counts."""
        return {"applied": self.applied, "duplicates": self.duplicates, "ignored": self.ignored}


def _ignore(outcome: Outcome, provider: str, what: str) -> Outcome:
    log.info("%s callback for unknown message (%s): ignored", provider, what)
    outcome.ignored += 1
    return outcome


def from_millis(value: Any) -> datetime | None:
    """A UTC datetime from epoch milliseconds (int or digit string), else None."""
    try:
        return datetime.fromtimestamp(int(str(value)) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def from_seconds(value: Any) -> datetime | None:
    """A UTC datetime from epoch seconds (float allowed), else None."""
    try:
        return datetime.fromtimestamp(float(str(value)), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def esms(session: Session, message_id: int, params: dict[str, str]) -> Outcome:
    """eSMS report: SendStatus 5 with SendSuccess>0 delivered, 5 all failed or 4 failed."""
    outcome = Outcome()
    message = feedback.find_message(session, message_id)
    if message is None:
        return _ignore(outcome, "esms", f"message {message_id}")
    status, success, failed = (
        params.get(k, "") for k in ("SendStatus", "SendSuccess", "SendFailed")
    )
    if status == "5" and success not in ("", "0"):
        kind = "delivered"
    elif status == "4" or (status == "5" and failed not in ("", "0")):
        kind = "failed"
    elif status == "5":
        kind = "sent"
    else:
        kind = "pending"  # 7: waiting for the carrier
    event_id = f"{params.get('SMSID', '')}:{message_id}:{status}:{success}:{failed}"
    payload = {**params, "reason": f"eSMS SendStatus {status}"} if kind == "failed" else params
    outcome.add(feedback.record_message_event(session, message, kind, "esms", event_id, payload))
    return outcome


def twilio(session: Session, params: dict[str, str], message_id: str | None) -> Outcome:
    """Twilio status: delivered / sent / undelivered / failed (+ ErrorCode) / read."""
    outcome = Outcome()
    sid = params.get("MessageSid") or params.get("SmsSid")
    message = feedback.find_message(session, message_id, sid)
    if message is None:
        return _ignore(outcome, "twilio", f"MessageSid {sid}")
    status = params.get("MessageStatus") or params.get("SmsStatus") or "unknown"
    code = params.get("ErrorCode", "")
    kind = TWILIO_STATUS.get(status, status)
    if kind == "failed" and code in TWILIO_BAD_NUMBER:
        kind = "bounced"
    payload: dict[str, Any] = dict(params)
    if code:
        payload["reason"] = f"Twilio {status} ErrorCode {code}"
    result = feedback.record_message_event(
        session, message, kind, "twilio", f"{sid}:{status}", payload
    )
    outcome.add(result)
    if result.duplicate or not message.address:
        return outcome
    if code == TWILIO_OPTED_OUT:
        outcome.event_ids += feedback.unsubscribe_message(session, message, "twilio")
    elif kind == "bounced":
        feedback.suppress(session, "sms", message.address, "hard_bounce", "all")
    return outcome


def zalo(session: Session, data: dict[str, Any]) -> Outcome:
    """Zalo: user_received_message -> delivered; user_seen_message -> read; user_send_* ->
    replied on the latest Zalo OA message to that follower (and opens the OA window)."""
    outcome = Outcome()
    name = str(data.get("event_name", ""))
    body = data.get("message") if isinstance(data.get("message"), dict) else {}
    assert isinstance(body, dict)
    when = from_millis(body.get("delivery_time")) or from_millis(data.get("timestamp"))
    if name == "user_received_message":
        msg_id = str(body.get("msg_id", ""))
        message = feedback.find_message(session, body.get("tracking_id"), msg_id or None)
        if message is None:
            return _ignore(outcome, "zalo", f"tracking_id {body.get('tracking_id')}")
        outcome.add(feedback.record_message_event(
            session, message, "delivered", "zalo", f"{msg_id or message.id}:{name}", data, when
        ))
    elif name == "user_seen_message":
        ids = body.get("msg_ids") or [body.get("msg_id")]
        for msg_id in [str(i) for i in ids if i]:
            message = feedback.find_message(session, None, msg_id)
            if message is None:
                _ignore(outcome, "zalo", f"msg_id {msg_id}")
                continue
            outcome.add(feedback.record_message_event(
                session, message, "read", "zalo", f"{msg_id}:{name}", data, when
            ))
    elif name.startswith("user_send_"):
        sender = data.get("sender") if isinstance(data.get("sender"), dict) else {}
        assert isinstance(sender, dict)
        mid = str(body.get("msg_id", "")) or f"{sender.get('id')}:{data.get('timestamp')}"
        _inbound(session, outcome, "zalo", Contact.zalo_user_id, str(sender.get("id", "")),
                 ("zalo_oa",), mid, data, when)
    else:
        outcome.ignored += 1
    return outcome


def _inbound(
    session: Session,
    outcome: Outcome,
    provider: str,
    column: Any,
    user_id: str,
    channels: tuple[str, ...],
    inbound_id: str,
    payload: dict[str, Any],
    when: datetime | None,
) -> None:
    """A person wrote to us: open the reply window and mark our latest message replied."""
    contact = session.scalar(select(Contact).where(column == user_id)) if user_id else None
    if contact is None:
        _ignore(outcome, provider, f"inbound from unknown user {user_id!r}")
        return
    window = "messenger" if provider == "facebook" else provider
    stamp = (when or now()).isoformat()
    previous = (contact.last_inbound_at or {}).get(window)
    if previous is None or str(previous) < stamp:
        contact.last_inbound_at = {**(contact.last_inbound_at or {}), window: stamp}
    latest = session.scalars(
        select(Message)
        .where(
            Message.contact_id == contact.id,
            Message.channel.in_(channels),
            Message.sent_at.is_not(None),
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        session.flush()
        return
    outcome.add(feedback.record_message_event(
        session, latest, "replied", provider, f"reply:{inbound_id}", payload, when
    ))


def _messenger_before(session: Session, psid: str, watermark: datetime) -> list[Message]:
    """Messenger messages to ``psid`` sent at or before ``watermark``."""
    contact_id = session.scalar(select(Contact.id).where(Contact.facebook_psid == psid))
    if contact_id is None:
        return []
    return list(session.scalars(
        select(Message).where(
            Message.contact_id == contact_id,
            Message.channel == "messenger",
            Message.sent_at.is_not(None),
            Message.sent_at <= watermark,
        )
    ))


def facebook(session: Session, data: dict[str, Any]) -> Outcome:
    """Messenger webhook entries: delivery (mids or watermark), read (watermark), message."""
    outcome = Outcome()
    entries = data.get("entry") if isinstance(data.get("entry"), list) else []
    assert isinstance(entries, list)
    for entry in entries:
        items = entry.get("messaging") if isinstance(entry, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                _facebook_item(session, outcome, item)
    return outcome


def _facebook_item(session: Session, outcome: Outcome, item: dict[str, Any]) -> None:
    sender = item.get("sender") if isinstance(item.get("sender"), dict) else {}
    assert isinstance(sender, dict)
    psid = str(sender.get("id", ""))
    when = from_millis(item.get("timestamp"))
    delivery, read, inbound = item.get("delivery"), item.get("read"), item.get("message")
    if isinstance(delivery, dict):
        mids = [str(m) for m in delivery.get("mids") or [] if m]
        messages = [m for mid in mids if (m := feedback.find_message(session, None, mid))]
        watermark = from_millis(delivery.get("watermark"))
        if not mids and watermark is not None:
            messages = _messenger_before(session, psid, watermark)
        if not messages:
            _ignore(outcome, "facebook", f"delivery {mids or watermark}")
        for message in messages:
            outcome.add(feedback.record_message_event(
                session, message, "delivered", "facebook", f"delivered:{message.id}", item,
                watermark or when,
            ))
    elif isinstance(read, dict):
        watermark = from_millis(read.get("watermark"))
        messages = _messenger_before(session, psid, watermark) if watermark else []
        if not messages:
            _ignore(outcome, "facebook", f"read by {psid!r}")
        for message in messages:
            outcome.add(feedback.record_message_event(
                session, message, "read", "facebook", f"read:{message.id}", item, watermark
            ))
    elif isinstance(inbound, dict) and not inbound.get("is_echo"):
        mid = str(inbound.get("mid") or f"{psid}:{item.get('timestamp')}")
        _inbound(session, outcome, "facebook", Contact.facebook_psid, psid, ("messenger",),
                 mid, item, when)
    else:
        outcome.ignored += 1


def _mailgun_message(session: Session, event: dict[str, Any]) -> Message | None:
    variables = event.get("user-variables")
    if isinstance(variables, dict) and variables.get("message_id"):
        found = feedback.find_message(session, variables["message_id"])
        if found is not None:
            return found
    message = event.get("message") if isinstance(event.get("message"), dict) else {}
    headers = message.get("headers") if isinstance(message, dict) else None
    header_id = str(headers.get("message-id", "")) if isinstance(headers, dict) else ""
    match = MAILGUN_MESSAGE_ID.match(header_id)
    if match:
        return feedback.find_message(session, match.group(1))
    if not header_id:
        return None
    return feedback.find_message(session, None, header_id) or feedback.find_message(
        session, None, f"<{header_id.strip('<>')}>"
    )


def mailgun(session: Session, data: dict[str, Any]) -> Outcome:
    """Mailgun event: delivered, failed (permanent -> bounced + hard-bounce suppression,
    temporary -> event only), opened, clicked, unsubscribed, complained (suppressed)."""
    outcome = Outcome()
    event: dict[str, Any] = data["event-data"]
    message = _mailgun_message(session, event)
    if message is None:
        return _ignore(outcome, "mailgun", f"event {event.get('id')}")
    name = str(event.get("event", "unknown"))
    kind = name
    payload = dict(event)
    if name == "failed":
        permanent = event.get("severity") == "permanent"
        kind = "bounced" if permanent else "temporary_failure"
        status = event.get("delivery-status")
        detail = status.get("message") if isinstance(status, dict) else None
        payload["reason"] = f"{event.get('reason', name)}: {detail or ''}".strip(": ")
    block = data.get("signature") if isinstance(data.get("signature"), dict) else {}
    assert isinstance(block, dict)
    event_id = str(event.get("id") or block.get("token"))
    extra = {"url": event["url"]} if name == "clicked" and event.get("url") else {}
    result = feedback.record_message_event(
        session, message, kind, "mailgun", event_id, payload,
        from_seconds(event.get("timestamp")), properties=extra,
    )
    outcome.add(result)
    if result.duplicate:
        return outcome
    address = str(event.get("recipient") or message.address or "")
    if kind == "bounced" and address:
        feedback.suppress(session, "email", address, "hard_bounce", "all")
    elif name == "complained":
        if address:
            feedback.suppress(session, "email", address, "complaint", "marketing")
        outcome.event_ids += feedback.unsubscribe_message(session, message, "mailgun_complaint")
    elif name == "unsubscribed":
        outcome.event_ids += feedback.unsubscribe_message(session, message, "mailgun")
    return outcome
