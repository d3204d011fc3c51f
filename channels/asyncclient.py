"""Provider calls without a thread each: keep-alive HTTP/1.1 on an asyncio event loop.

A thread per call in flight costs more CPU in GIL hand-offs than the call itself when
dozens are in flight (about 0.4 ms per call on the loopback ZNS bench). :class:`AsyncLeanClient`
sends the same plain requests as :class:`channels.leanclient.LeanClient` (same bytes:
the request is built by :func:`channels.leanclient.plain_request`) from one event loop,
on keep-alive connections kept per origin (one per call in flight, reused after).

Kept from the threaded transport: the client's default headers and timeouts, an idle
connection the server has closed is replaced before use, failures raise the httpx
exceptions channels.retry sorts (ConnectError / ConnectTimeout: the request never left;
WriteError, ReadTimeout, ReadError, RemoteProtocolError: it may have been delivered),
and an ``httpx.Response`` with its ``request`` set (encoded bodies decoded by httpx).
Answers may be sized by Content-Length, chunked, or end when the server closes.
A connection and its client belong to one event loop.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import certifi
import httpx

from channels.keepalive import Origin, build_response
from channels.leanclient import plain_request

#: Idle connections kept per origin; more are closed when their call returns.
MAX_IDLE = 64
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class AsyncLeanClient:
    """Plain JSON/bytes requests on an event loop (see the module docstring)."""

    def __init__(self, *, timeout: httpx.Timeout | float, headers: dict[str, str]) -> None:
        # The same default headers as LeanClient (httpx.Client's, lower-case names).
        with httpx.Client(timeout=timeout, headers=headers) as template:
            self._defaults = dict(template.headers)
            self._timeouts = template.timeout.as_dict()
        self._idle: dict[Origin, list[Connection]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ssl: ssl.SSLContext | None = None

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request that uses only ``json``, ``content``, ``headers``, ``timeout``."""
        plain = plain_request(self._defaults, self._timeouts, method, url, kwargs)
        if plain is None:
            raise TypeError(f"AsyncLeanClient sends plain requests only, not {sorted(kwargs)}")
        origin, method, target, body, headers, timeouts, request = plain
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections of another (e.g. a forked parent's) loop
            self._idle, self._loop = {}, loop
        reader, writer = await self._connection(origin, timeouts.get("connect"))
        host = (
            origin[1]
            if origin[2] == (443 if origin[0] == "https" else 80)
            else (f"{origin[1]}:{origin[2]}")
        )
        lines = [f"{method} {target} HTTP/1.1", f"host: {host}"]
        lines += [f"{name}: {value}" for name, value in headers.items() if name != "host"]
        try:
            async with asyncio.timeout(timeouts.get("write")):
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
                await writer.drain()
        except (OSError, TimeoutError) as exc:
            writer.close()
            raise httpx.WriteError(str(exc) or repr(exc), request=request) from exc
        try:
            async with asyncio.timeout(timeouts.get("read")):
                status, reason, answer, content, reusable = await _read_answer(reader, method)
        except TimeoutError as exc:
            writer.close()
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
            ConnectionError,
        ) as exc:
            writer.close()
            raise httpx.RemoteProtocolError(str(exc) or repr(exc), request=request) from exc
        except OSError as exc:
            writer.close()
            raise httpx.ReadError(str(exc) or repr(exc), request=request) from exc
        idle = self._idle.setdefault(origin, [])
        if reusable and len(idle) < MAX_IDLE:
            idle.append((reader, writer))
        else:
            writer.close()
        return build_response(status, reason, answer, content, request)

    async def _connection(self, origin: Origin, timeout: float | None) -> Connection:
        """An idle connection to ``origin`` the server has not closed, or a new one."""
        idle = self._idle.get(origin)
        while idle:
            reader, writer = idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context(cafile=certifi.where())
            context = self._ssl
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.open_connection(host, port, ssl=context)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or repr(exc)) from exc

    def close(self) -> None:
        """Close the idle connections (from the client's loop if it runs; with a closed
        loop their sockets go with the loop's transports)."""
        idle, self._idle = self._idle, {}
        writers = [writer for group in idle.values() for _, writer in group]
        if self._loop is None or self._loop.is_closed():
            return
        for writer in writers:
            if self._loop.is_running():
                self._loop.call_soon_threadsafe(writer.close)
            else:
                writer.close()


async def _read_answer(
    reader: asyncio.StreamReader, method: str
) -> tuple[int, str, list[tuple[str, str]], bytes, bool]:
    """Status, reason, headers, body and whether the connection may be reused."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    version, status, reason = (head[0].split(" ", 2) + [""])[:3]
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {head[0][:80]!r}")
    headers = []
    for line in head[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    fields = {name.lower(): value.lower() for name, value in headers}
    code = int(status)
    reusable = version == "HTTP/1.1" and fields.get("connection") != "close"
    if method == "HEAD" or code in (204, 304) or 100 <= code < 200:
        return code, reason, headers, b"", reusable
    if "chunked" in fields.get("transfer-encoding", ""):
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append((await reader.readexactly(size + 2))[:-2])
        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
            pass
        return code, reason, headers, b"".join(parts), reusable
    if "content-length" in fields:
        return (
            code,
            reason,
            headers,
            await reader.readexactly(int(fields["content-length"])),
            (reusable),
        )
    return code, reason, headers, await reader.read(), False  # ends when the server closes
