"""Opt-out without a personal token, for pooled advertising SMS, and pool click links.

  GET  /u/sms        a page asking for the phone number (Vietnamese)
  POST /u/sms        ``phone=...``: shows the masked number with one confirm button
                     (carrying the number, signed); ``token=...``: opts the number out
                     of marketing SMS at once (every contact on it, and the address)
  GET  /t/p/{token}  302 to link N of an advertising pool, counted on the pool

A pooled SMS has the same text for every phone, so its opt-out instruction names this
page instead of a per-message unsubscribe URL.
"""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy import select

from automation import links
from automation.contacts.identity import AddressError, normalize_phone
from automation.contacts.reachability import suppress
from automation.core.config import get_settings
from automation.core.db import session_scope
from automation.core.models import Contact
from automation.core.vocabulary import MARKETING
from automation.delivery.pools import OPTOUT_PATH, record_click
from automation.feedback.results import dispatch_events, unsubscribe
from automation.ingest import unsubscribe_page as page

router = APIRouter(tags=["tracking"])
NO_STORE = {"Cache-Control": "no-store, private"}
KIND = "sms-optout"
SOURCE = "sms_optout_page"


def _form(error: str = "") -> str:
    shop = escape(get_settings().shop_name)
    problem = f'<p class="note" id="error">{escape(error)}</p>' if error else ""
    content = f"""<p>Nhập số điện thoại để ngừng nhận tin nhắn quảng cáo từ
<strong>{shop}</strong>.</p>
{problem}
<form method="post" action="{OPTOUT_PATH}">
<input name="phone" type="tel" required placeholder="0912 345 678">
<button type="submit" id="next">Tiếp tục</button>
</form>"""
    return page.PAGE.format(title="Từ chối nhận quảng cáo", state="ask", content=content)


def _confirm(phone: str) -> str:
    token = links.make_token(KIND, int(phone.lstrip("+")))
    content = f"""<p>Ngừng gửi tin nhắn quảng cáo tới {escape(page.mask_address(phone))}?</p>
<form method="post" action="{OPTOUT_PATH}">
<input type="hidden" name="token" value="{escape(token)}">
<button type="submit" id="confirm">Xác nhận</button>
</form>"""
    return page.PAGE.format(title="Từ chối nhận quảng cáo", state="confirm", content=content)


@router.get(OPTOUT_PATH)
def optout_form() -> Response:
    """The page asking for the phone number."""
    return HTMLResponse(_form(), headers=NO_STORE)


@router.post(OPTOUT_PATH)
async def optout_post(request: Request) -> Response:
    """Step 1 (``phone``): confirm page; step 2 (``token``): the number is opted out."""
    fields = {k: v[0] for k, v in parse_qs((await request.body())[:2048].decode()).items()}
    if "token" in fields:
        try:
            (digits,) = links.read_token(KIND, fields["token"], 1)
        except links.BadLink:
            return HTMLResponse(page.invalid_page(), status_code=404, headers=NO_STORE)
        dispatch_events(opt_out_phone(f"+{digits}"))
        html = page.done_page("sms", f"+{digits}", get_settings().shop_name)
        return HTMLResponse(html, headers=NO_STORE)
    try:
        entered = normalize_phone(fields.get("phone"))
    except AddressError:
        entered = None
    if entered is None:
        html = _form("Số điện thoại không hợp lệ, hãy nhập lại (ví dụ 0912 345 678).")
        return HTMLResponse(html, status_code=422, headers=NO_STORE)
    return HTMLResponse(_confirm(entered), headers=NO_STORE)


def opt_out_phone(phone: str) -> list[int]:
    """Opt every contact on ``phone`` (and the number itself) out of marketing SMS."""
    with session_scope() as session:
        event_ids: list[int] = []
        for contact in session.scalars(select(Contact).where(Contact.phone == phone)):
            event_ids += unsubscribe(session, contact, "sms", SOURCE, address=phone)
        suppress(session, "sms", phone, "unsubscribed", MARKETING)
    return event_ids


@router.get("/t/p/{token}")
def pool_click(token: str) -> Response:
    """Count a click on a pool's link and redirect to it; 404 for anything else."""
    try:
        pool_id, index = links.verify_pool_click(token)
    except links.BadLink:
        return PlainTextResponse("not found", status_code=404, headers=NO_STORE)
    with session_scope() as session:
        target = record_click(session, pool_id, index)
    if target is None:
        return PlainTextResponse("not found", status_code=404, headers=NO_STORE)
    return RedirectResponse(target, status_code=302, headers=NO_STORE)
