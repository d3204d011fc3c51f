"""Provider calls without a thread each: keep-alive HTTP/1.1 on an asyncio event loop.

A thread per call in flight costs more CPU in GIL hand-offs than the call itself when
dozens are in flight (about 0.4 ms per call on the loopback ZNS bench). :class:`AsyncLeanClient`
sends the same plain requests as :class:`channels.leanclient.LeanClient` (built by
:func:`channels.leanclient.plain_request`: same method, target, headers and body) from one
event loop, on keep-alive connections kept per origin (one per call in flight, reused after).

Answers are framed by httptools (the C binding of llhttp that uvicorn uses), one
``HttpResponseParser`` per socket fed from asyncio streams: Content-Length, chunked with
trailers (trailers dropped), or until the server closes (llhttp does not end such a body
by itself: EOF after a head with neither Content-Length nor chunking ends the answer, and
EOF inside a sized or chunked body is a RemoteProtocolError); 1xx answers are skipped. A
connection is reused only when llhttp says keep-alive at the end of the answer and no byte
followed it. The request head is one formatted line per header, written here: a header
name that is not a token, or a method, target or value holding CR, LF or NUL, is refused
before anything is sent; Content-Length is the body's length (a caller's is replaced, a
Transfer-Encoding dropped). HEAD answers end at their head and close the connection.

CPU per call, 32 calls in flight on a loopback keep-alive asyncio server, process CPU:
``httpx.AsyncClient`` (httpcore's pool) 2.4-2.8 ms, h11 151-238 us (its events and header
validation), aiohttp 123-148 us, a hand-written parser 72-102 us, httptools 78-100 us.

Kept from the threaded transport: the client's default headers and timeouts, an idle
connection the server has closed is replaced before use, failures raise the httpx
exceptions channels.retry sorts (ConnectError / ConnectTimeout: the request never left;
WriteError, ReadTimeout, ReadError, RemoteProtocolError: it may have been delivered;
LocalProtocolError, as httpx's, for a request refused before writing), and an
``httpx.Response`` with its ``request`` set (encoded bodies decoded by httpx). A
connection and its client belong to one event loop.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from typing import Any

import certifi
import httptools
import httpx

from channels.keepalive import Origin, build_response
from channels.leanclient import plain_request

#: Idle connections kept per origin; more are closed when their call returns.
MAX_IDLE = 64
#: Bytes asked of the socket per read.
READ_SIZE = 65536
#: A header name (RFC 9110 token) and what no line of the request head may hold.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BREAKS = re.compile(r"[\r\n\0]")
_PARSE_ERRORS = (httptools.HttpParserError, httptools.HttpParserUpgrade)


class _Answer:
    """The httptools callbacks of one connection: the answer being read."""

    __slots__ = ("parser", "status", "reason", "headers", "parts", "head", "done", "reuse")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status, self.reason = 0, ""
        self.headers: list[tuple[str, str]] = []
        self.parts: list[bytes] = []
        self.head = self.done = self.reuse = False

    def start(self) -> None:
        """Before a request: no answer yet."""
        self.status, self.reason, self.headers, self.parts = 0, "", [], []
        self.head = self.done = self.reuse = False

    def on_message_begin(self) -> None:
        if self.done:  # bytes after the answer: the connection is not reused
            self.reuse = False
            return
        self.status, self.reason, self.headers, self.parts = 0, "", [], []
        self.head = False

    def on_status(self, data: bytes) -> None:
        if not self.done:
            self.reason += data.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.head:  # trailers (after the head) are dropped, as h11 and httpx do
            self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if not self.done:
            self.head = True
            self.status = self.parser.get_status_code()

    def on_body(self, data: bytes) -> None:
        if not self.done:
            self.parts.append(data)

    def on_message_complete(self) -> None:
        if self.done or self.status < 200:  # 1xx (e.g. 100 Continue): the answer follows
            return
        self.done = True
        self.reuse = self.parser.should_keep_alive()  # read before llhttp resets its flags

    def ends_at_close(self) -> bool:
        """True for a final answer's head with neither Content-Length nor chunking."""
        return self.head and not any(
            name.lower() == "content-length"
            or (name.lower() == "transfer-encoding" and "chunked" in value.lower())
            for name, value in self.headers
        )


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter, _Answer]


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
        data = _head(method, target, origin, headers, body, request) + body
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections of another (e.g. a forked parent's) loop
            self._idle, self._loop = {}, loop
        connection = await self._connection(origin, timeouts.get("connect"))
        reader, writer, answer = connection
        try:
            async with asyncio.timeout(timeouts.get("write")):
                writer.write(data)
                await writer.drain()
        except (OSError, TimeoutError) as exc:
            writer.close()
            raise httpx.WriteError(str(exc) or repr(exc), request=request) from exc
        try:
            async with asyncio.timeout(timeouts.get("read")):
                await _read_answer(reader, answer, method == "HEAD")
        except TimeoutError as exc:
            writer.close()
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except (*_PARSE_ERRORS, ConnectionError) as exc:
            writer.close()
            raise httpx.RemoteProtocolError(str(exc) or repr(exc), request=request) from exc
        except OSError as exc:
            writer.close()
            raise httpx.ReadError(str(exc) or repr(exc), request=request) from exc
        idle = self._idle.setdefault(origin, [])
        if answer.reuse and len(idle) < MAX_IDLE:
            idle.append(connection)
        else:  # HTTP/1.0, "connection: close", an answer ended by the close, bytes after it
            writer.close()
        content = b"".join(answer.parts)
        return build_response(answer.status, answer.reason, answer.headers, content, request)

    async def _connection(self, origin: Origin, timeout: float | None) -> Connection:
        """An idle connection to ``origin`` the server has not closed, or a new one."""
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection[0].at_eof() and not connection[1].is_closing():
                return connection
            connection[1].close()
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context(cafile=certifi.where())
            context = self._ssl
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, ssl=context)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or repr(exc)) from exc
        return reader, writer, _Answer()

    def close(self) -> None:
        """Close the idle connections (from the client's loop if it runs; with a closed
        loop their sockets go with the loop's transports)."""
        idle, self._idle = self._idle, {}
        writers = [writer for group in idle.values() for _, writer, _ in group]
        if self._loop is None or self._loop.is_closed():
            return
        for writer in writers:
            if self._loop.is_running():
                self._loop.call_soon_threadsafe(writer.close)
            else:
                writer.close()


def _head(
    method: str,
    target: str,
    origin: Origin,
    headers: dict[str, str],
    body: bytes,
    request: httpx.Request,
) -> bytes:
    """The request head: host first, then ``headers`` in order (Content-Length: the body's,
    no Transfer-Encoding); LocalProtocolError for a line break, NUL or a non-token name."""
    scheme, host, port = origin
    lines = [
        f"{method} {target} HTTP/1.1",
        f"host: {host}" if port == (443 if scheme == "https" else 80) else f"host: {host}:{port}",
    ]
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise httpx.LocalProtocolError(f"invalid header name {name!r}", request=request)
        if name == "content-length":
            lines.append(f"content-length: {len(body)}")
        elif name not in ("host", "transfer-encoding"):
            lines.append(f"{name}: {value}")
    if _BREAKS.search("".join(lines)):
        raise httpx.LocalProtocolError("CR, LF or NUL in the request head", request=request)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_answer(reader: asyncio.StreamReader, answer: _Answer, head_only: bool) -> None:
    """Read the final answer into ``answer`` (see the module docstring for the framing)."""
    answer.start()
    feed = answer.parser.feed_data
    while not answer.done:
        data = await reader.read(READ_SIZE)
        if not data:
            if answer.status >= 200 and answer.ends_at_close():
                answer.done = True  # the body ends with the connection
                return
            raise httptools.HttpParserError("the server closed the connection mid-answer")
        try:
            feed(data)
        except _PARSE_ERRORS:
            if not answer.done:
                raise
            answer.reuse = False  # junk after the answer
        if head_only and answer.head and answer.status >= 200 and not answer.done:
            answer.done = True  # HEAD: no body whatever the head says; the parser is not
            answer.reuse = False  # told so, so the connection is not reused
