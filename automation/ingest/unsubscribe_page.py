"""The Vietnamese unsubscribe pages: confirm (GET), done (POST) and invalid link."""

from __future__ import annotations

from html import escape

CHANNEL_NAMES = {
    "email": "email",
    "sms": "tin nhắn SMS",
    "zalo": "Zalo",
    "messenger": "Facebook Messenger",
}

PAGE = """<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: #f5f5f5;
       color: #222; margin: 0; padding: 2rem 1rem; }}
main {{ max-width: 32rem; margin: 0 auto; background: #fff; border-radius: 8px;
       padding: 2rem; box-shadow: 0 1px 4px rgba(0, 0, 0, .08); }}
h1 {{ font-size: 1.4rem; margin-top: 0; }}
button {{ background: #c62828; color: #fff; border: 0; border-radius: 6px;
         padding: .75rem 1.5rem; font-size: 1rem; cursor: pointer; }}
.note {{ color: #666; font-size: .9rem; }}
</style>
</head>
<body>
<main id="{state}">
<h1>{title}</h1>
{content}
</main>
</body>
</html>
"""


def mask_address(address: str | None) -> str:
    """Hide most of an address: ``n***@example.com``, ``+8491****678``."""
    if not address:
        return ""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(address) > 7:
        return address[:5] + "*" * (len(address) - 8) + address[-3:]
    return address[:2] + "***"


def channel_name(channel: str) -> str:
    """The Vietnamese name of a consent channel."""
    return CHANNEL_NAMES.get(channel, channel)


def confirm_page(channel: str, address: str | None, shop: str, already: bool) -> str:
    """GET: ask for confirmation with one button that POSTs to the same URL."""
    who = f" ({escape(mask_address(address))})" if address else ""
    status = (
        '<p class="note" id="already">Bạn đã hủy đăng ký trước đó.</p>' if already else ""
    )
    name = escape(channel_name(channel))
    content = f"""<p>Bạn có chắc muốn ngừng nhận tin khuyến mãi qua {name}{who}
từ <strong>{escape(shop)}</strong>?</p>
{status}
<form method="post">
<button type="submit" id="confirm">Hủy đăng ký</button>
</form>
<p class="note">Bạn vẫn nhận được thông báo về đơn hàng của mình.</p>"""
    return PAGE.format(title="Hủy đăng ký nhận tin", state="confirm", content=content)


def done_page(channel: str, address: str | None, shop: str) -> str:
    """POST: the opt-out is recorded."""
    who = f" đến {escape(mask_address(address))}" if address else ""
    content = f"""<p id="done">Bạn đã hủy đăng ký thành công.</p>
<p>{escape(shop)} sẽ không gửi tin khuyến mãi qua {escape(channel_name(channel))}{who} nữa.</p>
<p class="note">Nếu đây là nhầm lẫn, hãy liên hệ với cửa hàng để đăng ký lại.</p>"""
    return PAGE.format(title="Đã hủy đăng ký", state="done", content=content)


def invalid_page() -> str:
    """A forged, damaged or stale link."""
    content = """<p id="invalid">Liên kết hủy đăng ký không hợp lệ hoặc đã hết hạn.</p>
<p class="note">Hãy dùng liên kết trong tin nhắn gần nhất bạn nhận được.</p>"""
    return PAGE.format(title="Liên kết không hợp lệ", state="invalid", content=content)
