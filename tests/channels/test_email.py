"""EmailChannel against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from channels.base import OutboundMessage, SendResult
from channels.email import EmailChannel
from channels.errors import PermanentError, TransientError
from tests.channels.conftest import SmtpServer, free_port

FROM = "Cửa hàng An <shop@an.example.vn>"


def make(msg_id: int, to: str = "an@example.vn", **kw: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "subject": "Chào Nguyễn Văn An",
        "text": "Đơn hàng của bạn đã được giao.",
        "html": "<p>Đơn hàng của bạn <b>đã được giao</b>.</p>",
        "to_name": "Nguyễn Văn An",
    }
    fields.update(kw)
    return OutboundMessage(id=msg_id, channel="email", to=to, **fields)  # type: ignore[arg-type]


def parsed(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_send_builds_utf8_multipart_with_stable_message_id(smtp_server: SmtpServer) -> None:
    channel = EmailChannel(smtp_server.url, FROM)
    result = channel.send(
        make(
            42,
            unsubscribe_url="https://shop.example.vn/u/abc?t=" + "x" * 90,
            unsubscribe_mailto="unsub+42@an.example.vn",
        )
    )

    assert result.provider_message_id == "<msg-42@an.example.vn>"
    mail_from, rcpts, raw = smtp_server.handler.envelopes[0]
    assert (mail_from, rcpts) == ("shop@an.example.vn", ["an@example.vn"])
    msg = parsed(raw)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Subject"] == "Chào Nguyễn Văn An"
    assert msg["To"].addresses[0].display_name == "Nguyễn Văn An"
    assert msg["From"].addresses[0].display_name == "Cửa hàng An"
    assert msg["Message-ID"] == "<msg-42@an.example.vn>"
    assert msg["List-Unsubscribe"] == (
        "<mailto:unsub+42@an.example.vn>, <https://shop.example.vn/u/abc?t=" + "x" * 90 + ">"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = (part.get_content() for part in msg.iter_parts())
    assert text.strip() == "Đơn hàng của bạn đã được giao."
    assert "<b>đã được giao</b>" in html
    assert raw.isascii()  # headers RFC 2047-encoded, bodies quoted-printable


def test_text_only_without_unsubscribe_has_no_list_headers(smtp_server: SmtpServer) -> None:
    EmailChannel(smtp_server.url, FROM).send(make(7, html=None))
    msg = parsed(smtp_server.handler.envelopes[0][2])
    assert msg.get_content_type() == "text/plain"
    assert msg["List-Unsubscribe"] is None and msg["List-Unsubscribe-Post"] is None


def test_batch_uses_one_session_and_maps_rcpt_replies(smtp_server: SmtpServer) -> None:
    smtp_server.handler.rcpt_replies = {
        "gone@example.vn": "550 5.1.1 No such user",
        "busy@example.vn": "451 4.3.0 Try later",
    }
    msgs = [
        make(1),
        make(2, to="gone@example.vn"),
        make(3, to="busy@example.vn"),
        make(4, to="binh@example.vn"),
    ]
    results = EmailChannel(smtp_server.url, FROM).send_batch(msgs)

    assert len(smtp_server.handler.sessions) == 1
    assert isinstance(results[0], SendResult)
    assert isinstance(results[1], PermanentError) and results[1].code == "550"
    assert isinstance(results[2], TransientError) and results[2].code == "451"
    assert isinstance(results[3], SendResult)
    assert [rcpts for _, rcpts, _ in smtp_server.handler.envelopes] == [
        ["an@example.vn"],
        ["binh@example.vn"],
    ]


def test_send_raises_permanent_for_refused_recipient(smtp_server: SmtpServer) -> None:
    smtp_server.handler.rcpt_replies = {"gone@example.vn": "550 5.1.1 No such user"}
    with pytest.raises(PermanentError, match="550"):
        EmailChannel(smtp_server.url, FROM).send(make(1, to="gone@example.vn"))


def test_dropped_connection_mid_batch_reconnects_once(smtp_server: SmtpServer) -> None:
    smtp_server.handler.hang_up_on = {"drop@example.vn"}
    msgs = [make(1), make(2, to="drop@example.vn"), make(3, to="binh@example.vn")]
    results = EmailChannel(smtp_server.url, FROM, timeout=5).send_batch(msgs)

    assert isinstance(results[0], SendResult)
    assert isinstance(results[1], TransientError)
    assert isinstance(results[2], SendResult)
    assert len(smtp_server.handler.sessions) == 2
    assert [r for _, r, _ in smtp_server.handler.envelopes] == [
        ["an@example.vn"],
        ["binh@example.vn"],
    ]


def test_second_drop_fails_the_rest_of_the_batch(smtp_server: SmtpServer) -> None:
    smtp_server.handler.hang_up_on = {"drop@example.vn"}
    msgs = [make(i, to="drop@example.vn") for i in range(1, 4)] + [make(9)]
    results = EmailChannel(smtp_server.url, FROM, timeout=5).send_batch(msgs)

    assert all(isinstance(r, TransientError) for r in results)
    assert len(smtp_server.handler.sessions) == 2
    assert smtp_server.handler.envelopes == []


def test_connection_refused_is_transient_for_every_message() -> None:
    channel = EmailChannel(f"smtp://127.0.0.1:{free_port()}", FROM, timeout=2)
    results = channel.send_batch([make(1), make(2)])
    assert len(results) == 2
    assert all(isinstance(r, TransientError) for r in results)
    with pytest.raises(TransientError, match="cannot connect"):
        channel.send(make(3))


def test_invalid_address_is_permanent_without_breaking_the_batch(smtp_server: SmtpServer) -> None:
    results = EmailChannel(smtp_server.url, FROM).send_batch(
        [make(1, to="not an address"), make(2)]
    )
    assert isinstance(results[0], PermanentError)
    assert isinstance(results[1], SendResult)


def test_smtp_url_parsing() -> None:
    channel = EmailChannel("smtp://u:p@smtp.example.invalid:587", FROM)
    assert channel.server.username == "u" and not channel.server.implicit_tls
    assert EmailChannel("smtps://u:p%40ss@mail.example.vn", FROM).server.port == 465
    assert EmailChannel("smtps://u:p%40ss@mail.example.vn", FROM).server.password == "p@ss"
    with pytest.raises(ValueError):
        EmailChannel("http://mail.example.vn", FROM)
