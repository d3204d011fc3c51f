"""Messenger Send API adapter: window rules and Graph error mapping."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from automation.core.config import get_settings
from automation.delivery.channels import close_adapters
from automation.delivery.send import deliver_batch
from channels.base import OutboundMessage
from channels.errors import PermanentError, TransientError
from channels.facebook import MessengerChannel
from channels.retry import RetryPolicy
from tests.channels.conftest import Reply, ScriptedServer
from tests.delivery.helpers import Loopback, contact, message

MSG = OutboundMessage(id=7, channel="messenger", to="psid-1", text="Đơn DH001 đã giao")
OK = {"recipient_id": "psid-1", "message_id": "m_abc"}


def channel(server: ScriptedServer, client: httpx.Client, policy: RetryPolicy) -> MessengerChannel:
    return MessengerChannel(
        "PAGE_TOKEN", graph_base=server.url + "/v21.0", client=client, policy=policy
    )  # noqa: E501


def test_inside_window_sends_update(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(200, OK))
    msg = replace(MSG, window_open=True, purpose="marketing")
    assert channel(http_server, client, policy).send(msg).provider_message_id == "m_abc"
    req = http_server.requests[0]
    assert req.path == "/v21.0/me/messages" and req.query == {"access_token": "PAGE_TOKEN"}
    assert req.json() == {
        "recipient": {"id": "psid-1"},
        "messaging_type": "UPDATE",
        "message": {"text": "Đơn DH001 đã giao"},
    }


def test_outside_window_transactional_uses_message_tag_and_buttons(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(200, OK))
    button = {"type": "web_url", "url": "https://shop.example/o/1", "title": "Xem đơn"}
    msg = replace(MSG, window_open=False, message_tag="POST_PURCHASE_UPDATE", buttons=[button])
    channel(http_server, client, policy).send(msg)
    body = http_server.requests[0].json()
    assert body["messaging_type"] == "MESSAGE_TAG" and body["tag"] == "POST_PURCHASE_UPDATE"
    assert body["message"] == {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "button", "text": MSG.text, "buttons": [button]},
        }
    }


@pytest.mark.parametrize(
    "msg",
    [
        replace(MSG, window_open=False, purpose="marketing", message_tag="POST_PURCHASE_UPDATE"),
        replace(MSG, window_open=None, purpose="marketing"),
        replace(MSG, window_open=False, purpose="transactional", message_tag=None),
        replace(MSG, window_open=False, purpose="transactional", message_tag="HUMAN_AGENT"),
    ],
)
def test_outside_window_refused_without_calling_graph(
    msg: OutboundMessage, http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    with pytest.raises(PermanentError, match="outside the 24-hour window"):
        channel(http_server, client, policy).send(msg)
    assert http_server.requests == []


def graph_error(code: int, subcode: int | None = None) -> dict[str, object]:
    err: dict[str, object] = {
        "message": "x",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "t",
    }  # noqa: E501
    if subcode:
        err["error_subcode"] = subcode
    return {"error": err}


def test_rate_limit_is_transient(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(400, graph_error(613)))
    with pytest.raises(TransientError) as info:
        channel(http_server, client, policy).send(replace(MSG, window_open=True))
    assert info.value.retry_after == 60.0 and info.value.code == "613"


def test_outside_window_error_from_graph_is_permanent(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(400, graph_error(10, 2018278)))
    with pytest.raises(PermanentError) as info:
        channel(http_server, client, policy).send(replace(MSG, window_open=True))
    assert info.value.code == "10/2018278"


@pytest.mark.parametrize(
    ("status", "code", "subcode", "error"),
    [(400, 4, None, TransientError), (400, 17, None, TransientError),
     (400, 32, None, TransientError), (400, 80006, None, TransientError),
     (400, 1200, None, TransientError), (500, 2, None, TransientError),
     (400, 100, 2018001, PermanentError), (400, 551, None, PermanentError),
     (400, 200, 2018028, PermanentError), (400, 190, None, TransientError),
     (403, 10, None, TransientError), (400, 100, None, PermanentError)],
)  # fmt: skip
def test_graph_error_table(
    status: int, code: int, subcode: int | None, error: type[Exception], policy: RetryPolicy
) -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(status, json=graph_error(code, subcode))
    )
    fb = MessengerChannel("t", client=httpx.Client(transport=transport), policy=policy)
    with pytest.raises(error) as info:
        fb.send(replace(MSG, window_open=True))
    assert type(info.value) is error


def test_success_status_without_message_id_is_transient(policy: RetryPolicy) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"recipient_id": "p"}))
    fb = MessengerChannel("t", client=httpx.Client(transport=transport), policy=policy)
    with pytest.raises(TransientError, match="unexpected answer"):
        fb.send(replace(MSG, window_open=True))


def test_send_batch_collects_errors_in_order(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(200, OK), Reply(400, graph_error(551)))
    msgs = [replace(MSG, window_open=True), replace(MSG, purpose="marketing"),
            replace(MSG, window_open=True)]  # fmt: skip
    with channel(http_server, client, policy) as fb:
        results = fb.send_batch(msgs)
    assert [type(r).__name__ for r in results] == ["SendResult", "PermanentError", "PermanentError"]
    assert len(http_server.requests) == 2


@pytest.mark.usefixtures("dsettings")
def test_outside_window_subcode_2534022_fails_once_through_the_worker(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Graph 10/2534022 through deliver_batch: failed at the first attempt, never re-queued."""
    graph = Loopback(lambda body: (400, graph_error(10, 2534022)))
    try:
        monkeypatch.setenv("FACEBOOK_PAGE_TOKEN", "PAGE_TOKEN")
        monkeypatch.setenv("FACEBOOK_GRAPH_BASE", graph.url + "/v21.0")
        root = Path(get_settings().templates_dir or "")
        (root / "t" / "fb.yaml").write_text('messenger:\n  text: "Đơn đã giao"\n', "utf-8")
        get_settings.cache_clear()
        close_adapters()
        recent = {"messenger": datetime.now(UTC).isoformat()}
        c = contact(session, facebook_psid="psid-1", last_inbound_at=recent)
        m = message(session, c, "messenger", "t/fb", purpose="transactional")
        session.commit()
        result = deliver_batch(session, [m.id], settings=get_settings())
        assert result.failed == [m.id] and result.retry == []
        session.refresh(m)
        assert m.status == "failed" and m.attempts == 1 and m.not_before is None
        assert m.error is not None and "10/2534022" in m.error
        assert len(graph.hits) == 1
    finally:
        graph.close()
        close_adapters()
