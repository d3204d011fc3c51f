"""Link rewriting: every http(s) link of an e-mail or SMS becomes a signed click URL."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape as html_escape
from html import unescape
from typing import Any

from automation import links
from automation.core.config import Settings, get_settings
from automation.messages.rendered import Rendered

URL_RE = re.compile(r"https?://[^\s<>\"'`]+")
HREF_RE = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)


def _strip_trailing(url: str) -> tuple[str, str]:
    trail = ""
    while url and url[-1] in ".,;:!?)]}":
        trail = url[-1] + trail
        url = url[:-1]
    return url, trail


def rewrite_links(
    out: Rendered,
    message_id: int,
    settings: Settings | None = None,
    url_for: Callable[[int], str] | None = None,
) -> None:
    """Replace http(s) links in email html/text and sms text with signed click URLs.

    The same target gets the same index in html and text; our own tracking and
    unsubscribe URLs are left alone. Targets are appended to ``out.links``.
    ``url_for(index)`` builds the click URL (default: the message's own click URL).
    """
    settings = settings or get_settings()
    click_url = url_for or (lambda i: links.tracking_url(message_id, i, settings))
    if out.channel not in ("email", "sms"):
        return
    index: dict[str, int] = {u: i for i, u in enumerate(out.links)}

    def tracked(url: str) -> str:
        if links.is_own_url(url, settings):
            return url
        if url not in index:
            index[url] = len(out.links)
            out.links.append(url)
        return click_url(index[url])

    def in_text(match: re.Match[str]) -> str:
        url, trail = _strip_trailing(match.group(0))
        return tracked(url) + trail

    def in_href(match: re.Match[str]) -> str:
        url = unescape(match.group(3))
        new = tracked(url)
        return f"{match.group(1)}{match.group(2)}{html_escape(new)}{match.group(2)}"

    if out.html:
        out.html = HREF_RE.sub(in_href, out.html)
    out.text = URL_RE.sub(in_text, out.text)


def links_mapping(out: Rendered) -> dict[str, Any]:
    """``Message.links`` value for a rendering: ``{"0": url, "1": url, ...}``."""
    return {str(i): url for i, url in enumerate(out.links)}
