"""Our own tracking links: click redirect, open pixel, unsubscribe page (RFC 8058 too).

  GET  /t/c/{token}  302 to the URL recorded in Message.links for that link index, only;
                     a forged or unknown token is 404 (never an open redirect)
  GET  /t/o/{token}  1x1 GIF; the first open of a message emits message.opened, repeated
                     opens are stored at most once an hour
  GET  /u/{token}    Vietnamese confirm page with one button
  POST /u/{token}    unsubscribes; body ``List-Unsubscribe=One-Click`` (RFC 8058) gets a
                     bare 200, a browser form gets the confirmation page

Tokens are built and checked by automation/links.py (signed with SECRET_KEY).
"""

from __future__ import annotations

import base64
import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy import select

from automation import links
from automation.core.clock import now
from automation.core.config import get_settings
from automation.core.db import session_scope
from automation.core.models import Consent, Contact
from automation.feedback.results import (
    consent_channel,
    contact_address,
    dispatch_events,
    find_message,
    record_message_event,
    unsubscribe_message,
)
from automation.ingest import unsubscribe_page as page

log = logging.getLogger(__name__)
router = APIRouter(tags=["tracking"])

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, private", "Pragma": "no-cache"}
ONE_CLICK = b"List-Unsubscribe=One-Click"


def _not_found() -> PlainTextResponse:
    return PlainTextResponse("not found", status_code=404, headers=NO_STORE)


@router.get("/t/c/{token}")
def click(token: str) -> Response:
    """Record a click and redirect to the message's own link; 404 for anything else."""
    try:
        message_id, index = links.verify_click(token)
    except links.BadLink:
        return _not_found()
    with session_scope() as session:
        message = find_message(session, message_id)
        target = links.link_target(message, index) if message is not None else None
        if message is None or target is None:
            log.info("click on unknown link message=%s index=%s", message_id, index)
            return _not_found()
        result = record_message_event(
            session, message, "clicked", "tracking",
            f"click:{message_id}:{index}:{now():%Y%m%d%H%M}",
            {"url": target, "link_index": index},
            canonical_key=f"message.clicked:{message_id}:{index}",
            properties={"url": target, "link_index": index},
        )
    dispatch_events(result.event_ids)
    return RedirectResponse(target, status_code=302, headers=NO_STORE)


@router.get("/t/o/{token}")
def open_pixel(token: str) -> Response:
    """Serve the 1x1 GIF and record the open (at most one stored open per hour)."""
    try:
        message_id = links.verify_open(token)
    except links.BadLink:
        return _not_found()
    event_ids: list[int] = []
    with session_scope() as session:
        message = find_message(session, message_id)
        if message is not None:
            result = record_message_event(
                session, message, "opened", "tracking", f"open:{message_id}:{now():%Y%m%d%H}",
            )
            event_ids = result.event_ids
    dispatch_events(event_ids)
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


def _invalid() -> HTMLResponse:
    return HTMLResponse(page.invalid_page(), status_code=404, headers=NO_STORE)


@router.get("/u/{token}")
def unsubscribe_form(token: str) -> Response:
    """The confirm page: nothing changes until the button is pressed (link scanners GET)."""
    try:
        message_id = links.verify_unsubscribe(token)
    except links.BadLink:
        return _invalid()
    with session_scope() as session:
        message = find_message(session, message_id)
        contact = session.get(Contact, message.contact_id) if message else None
        if message is None or contact is None:
            return _invalid()
        channel = consent_channel(message.channel)
        denied = session.scalar(
            select(Consent.status).where(
                Consent.contact_id == contact.id,
                Consent.channel == channel,
                Consent.purpose == "marketing",
            )
        )
        address = message.address or contact_address(contact, channel)
        html = page.confirm_page(channel, address, get_settings().shop_name, denied == "denied")
    return HTMLResponse(html, headers=NO_STORE)


def _is_one_click(body: bytes) -> bool:
    """RFC 8058 body, form-urlencoded or multipart/form-data."""
    compact = body.replace(b"%3D", b"=").replace(b"%3d", b"=")
    if ONE_CLICK in compact:
        return True
    return b'name="List-Unsubscribe"' in body and b"One-Click" in body


@router.post("/u/{token}")
async def unsubscribe_post(token: str, request: Request) -> Response:
    """Unsubscribe the message's recipient from that channel's marketing messages."""
    body = (await request.body())[:4096]
    one_click = _is_one_click(body)
    try:
        message_id = links.verify_unsubscribe(token)
    except links.BadLink:
        return _not_found() if one_click else _invalid()
    with session_scope() as session:
        message = find_message(session, message_id)
        contact = session.get(Contact, message.contact_id) if message else None
        if message is None or contact is None:
            return _not_found() if one_click else _invalid()
        source = "list_unsubscribe_one_click" if one_click else "unsubscribe_page"
        record_message_event(
            session, message, "unsubscribed", "tracking", f"unsubscribe:{message_id}",
            {"source": source},
        )
        event_ids = unsubscribe_message(session, message, source)
        channel = consent_channel(message.channel)
        address = message.address or contact_address(contact, channel)
    dispatch_events(event_ids)
    if one_click:
        return PlainTextResponse("unsubscribed", headers=NO_STORE)
    html = page.done_page(channel, address, get_settings().shop_name)
    return HTMLResponse(html, headers=NO_STORE)
