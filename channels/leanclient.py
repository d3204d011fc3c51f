"""The adapters' default client: an ``httpx.Client`` whose plain requests skip httpx's pipeline.

A provider call is one small JSON (or bytes) POST. ``httpx.Client.request`` spends more
CPU building it (URL merging, header merging, cookies, auth, redirect and event-hook
machinery: about 0.1 ms a call) than :class:`channels.keepalive.KeepAliveTransport` spends
sending it. :class:`LeanClient` sends a request that uses only ``json``, ``content``,
``headers`` and ``timeout`` straight through the transport; anything else (``auth``,
``data``, ``params``, cookies set on the client, a ``base_url``) takes httpx's own path.

What stays the same on the lean path: the client's default headers and timeouts, the
httpx exceptions the transport raises (so channels.retry sorts failures as before), and
an ``httpx.Response`` with its ``request`` set. What it leaves out: answers' cookies are
not stored (provider APIs authenticate with tokens, not sessions), no redirects are
followed (httpx's default too), no event hooks run.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import httpx
import orjson

from channels.keepalive import KeepAliveTransport, Origin

#: Keyword arguments the lean path handles; any other goes through httpx.Client.request.
LEAN_ARGUMENTS = frozenset({"json", "content", "headers", "timeout"})


@lru_cache(maxsize=256)
def _parsed(url: str) -> tuple[httpx.URL, Origin, str]:
    """An absolute URL, its origin and request target (the URLs of a few endpoints repeat)."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed, (parsed.scheme, parsed.host, port), parsed.raw_path.decode("ascii")


class LeanClient(httpx.Client):
    """``httpx.Client`` over a :class:`KeepAliveTransport` with a lean request path.

    The default headers are read once, at construction.
    """

    def __init__(self, *, timeout: httpx.Timeout | float, headers: dict[str, str]) -> None:
        self._lean = KeepAliveTransport()
        super().__init__(timeout=timeout, headers=headers, transport=self._lean)
        self._defaults = dict(self.headers)  # lower-case names
        self._timeouts = self.timeout.as_dict()

    def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """Send; a request using only LEAN_ARGUMENTS skips httpx's request pipeline."""
        lean = (
            None
            if self.cookies
            else plain_request(self._defaults, self._timeouts, method, url, kwargs)
        )
        if lean is None:
            return super().request(method, url, **kwargs)
        return self._lean.exchange(*lean)


Plain = tuple[Origin, str, str, bytes, dict[str, str], dict[str, Any], httpx.Request]


def plain_request(
    defaults: dict[str, str],
    default_timeouts: dict[str, Any],
    method: str,
    url: httpx.URL | str,
    kwargs: dict[str, Any],
) -> Plain | None:
    """What the lean path sends for a request: (origin, method, target, body, headers,
    timeouts, httpx.Request); None when it uses anything beyond LEAN_ARGUMENTS."""
    headers = kwargs.get("headers")
    content = kwargs.get("content")
    if (
        not isinstance(url, str)
        or not kwargs.keys() <= LEAN_ARGUMENTS
        or not isinstance(headers, dict | None)
        or not isinstance(content, bytes | str | None)
        or not url.startswith(("http://", "https://"))
    ):
        return None
    parsed, origin, target = _parsed(url)
    sent = dict(defaults)
    if headers:
        sent.update((str(k).lower(), str(v)) for k, v in headers.items())
    if content is not None:
        body = content.encode() if isinstance(content, str) else content
    elif kwargs.get("json") is not None:
        body = orjson.dumps(kwargs["json"], option=orjson.OPT_NON_STR_KEYS)
        sent["content-type"] = "application/json"
    else:
        body = b""
    if body or method in ("POST", "PUT", "PATCH"):
        sent["content-length"] = str(len(body))
    timeouts = (
        httpx.Timeout(kwargs["timeout"]).as_dict() if "timeout" in kwargs else default_timeouts
    )
    request = httpx.Request(
        method, parsed, headers=sent, content=body, extensions={"timeout": timeouts}
    )
    return origin, method, target, body, sent, timeouts, request
