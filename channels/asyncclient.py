"""Provider calls without a thread each: keep-alive HTTP/1.1 on an asyncio event loop.

A thread per call in flight costs more CPU in GIL hand-offs than the call itself when
dozens are in flight (about 0.4 ms per call on the loopback ZNS bench). :class:`AsyncLeanClient`
sends the same plain requests as :class:`channels.leanclient.LeanClient` (built by
:func:`channels.leanclient.plain_request`: same method, target, headers and body) from one
event loop, on keep-alive connections kept per origin (one per call in flight, reused after).

The HTTP/1.1 framing is h11's (one ``h11.Connection`` per socket over asyncio streams):
it writes the request head, reads the answer (Content-Length, chunked with trailers, or
until the server closes; 1xx answers skipped) and decides from its states whether the
connection may be reused. Not ``httpx.AsyncClient``: its pool (httpcore) cost 2.4-2.8 ms
CPU per call at 32 calls in flight on a loopback keep-alive server; this client costs
about 150-240 us (h11's event and header validation are most of it; a hand-written parser
took 75-105 us, aiohttp 123-148 us).

Kept from the threaded transport: the client's default headers and timeouts, an idle
connection the server has closed is replaced before use, failures raise the httpx
exceptions channels.retry sorts (ConnectError / ConnectTimeout: the request never left;
WriteError, ReadTimeout, ReadError, RemoteProtocolError: it may have been delivered;
LocalProtocolError, as httpx's, for a request h11 refuses to write, e.g. a header value
with a line break), and an ``httpx.Response`` with its ``request`` set (encoded bodies
decoded by httpx). A connection and its client belong to one event loop.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import certifi
import h11
import httpx

from channels.keepalive import Origin, build_response
from channels.leanclient import plain_request

#: Idle connections kept per origin; more are closed when their call returns.
MAX_IDLE = 64
#: Bytes asked of the socket per read.
READ_SIZE = 65536
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter, h11.Connection]
Answer = tuple[int, str, list[tuple[str, str]], bytes]


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
        host = (
            origin[1]
            if origin[2] == (443 if origin[0] == "https" else 80)
            else (f"{origin[1]}:{origin[2]}")
        )
        fields = [("host", host), *((k, v) for k, v in headers.items() if k != "host")]
        connection = await self._connection(origin, timeouts.get("connect"))
        reader, writer, state = connection
        try:
            data = state.send(h11.Request(method=method, target=target, headers=fields))
            if body:
                data += state.send(h11.Data(data=body))
            data += state.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:  # e.g. a header value with a line break
            writer.close()
            raise httpx.LocalProtocolError(str(exc), request=request) from exc
        try:
            async with asyncio.timeout(timeouts.get("write")):
                writer.write(data)
                await writer.drain()
        except (OSError, TimeoutError) as exc:
            writer.close()
            raise httpx.WriteError(str(exc) or repr(exc), request=request) from exc
        try:
            async with asyncio.timeout(timeouts.get("read")):
                status, reason, answer, content = await _read_answer(reader, state)
        except TimeoutError as exc:
            writer.close()
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except (h11.RemoteProtocolError, ConnectionError) as exc:
            writer.close()
            raise httpx.RemoteProtocolError(str(exc) or repr(exc), request=request) from exc
        except OSError as exc:
            writer.close()
            raise httpx.ReadError(str(exc) or repr(exc), request=request) from exc
        idle = self._idle.setdefault(origin, [])
        if state.our_state is state.their_state is h11.DONE and len(idle) < MAX_IDLE:
            state.start_next_cycle()
            idle.append(connection)
        else:  # HTTP/1.0, "connection: close", or an answer that ended with the connection
            writer.close()
        return build_response(status, reason, answer, content, request)

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
        return reader, writer, h11.Connection(h11.CLIENT)

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


async def _read_answer(reader: asyncio.StreamReader, state: h11.Connection) -> Answer:
    """Status, reason, headers and body of the answer, framed by h11 (Content-Length,
    chunked with trailers, or until the server closes); informational answers skipped."""
    answer: h11.Response | None = None
    parts: list[bytes] = []
    while True:
        event = state.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(READ_SIZE)
            if not data and state.their_state is h11.SEND_RESPONSE:
                raise h11.RemoteProtocolError("the server closed the connection without answering")
            state.receive_data(data)
        elif isinstance(event, h11.Response):
            answer = event
        elif isinstance(event, h11.Data):
            parts.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            assert answer is not None  # h11 ends a message it has started
            headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in answer.headers.raw_items()
            ]
            content = b"".join(parts)  # h11 hands bytearrays: bytes for httpx
            return answer.status_code, answer.reason.decode("latin-1"), headers, content
        elif isinstance(event, h11.ConnectionClosed):
            raise h11.RemoteProtocolError("the server closed the connection mid-answer")
        # h11.InformationalResponse (e.g. 100 Continue): the final answer follows
