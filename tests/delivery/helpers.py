# ruff: noqa: E501
"""Helpers for the delivery tests: loopback provider servers, rows, templates."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from automation.core.models import Consent, Contact, Message
from tests.loopback import Hit, read_hit

Answer = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


class Backlogged(ThreadingHTTPServer):
    """A listen backlog for dozens of concurrent connects (socketserver's default is 5:
    more simultaneous connects wait for a SYN retransmission, about 1 s)."""

    request_queue_size = 64


@dataclass
class Loopback:
    """A threaded HTTP server on 127.0.0.1 answering JSON like a provider."""

    answer: Answer
    hits: list[Hit] = field(default_factory=list)
    scripted: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        server = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                hit = read_hit(self)
                body = hit.body
                with lock:
                    server.hits.append(hit)
                    scripted = server.scripted.popleft() if server.scripted else None
                status, payload = scripted or server.answer(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = Backlogged(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def zns_ok(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Zalo ZNS success answer."""
    return 200, {
        "error": 0,
        "message": "Success",
        "data": {"msg_id": f"zns-{body.get('tracking_id')}", "sent_time": str(int(time.time()))},
    }


def esms_ok(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """eSMS success answer."""
    return 200, {"CodeResult": "100", "SMSID": f"sms-{body.get('RequestId')}"}


TEMPLATES = {
    "t/promo.yaml": """
sms:
  text: "{{ shop.name }}: {{ contact.first_name | first_name_or('ban') }} oi, giam 10% hom nay {{ shop.url }}/sale"
email:
  subject: "Ưu đãi cho {{ contact.first_name | first_name_or('bạn') }}"
  html: "<p>Chào {{ contact.first_name }}, xem <a href=\\"{{ shop.url }}/sale?a=1&b=2\\">ưu đãi</a></p>"
zalo_zns:
  template_id: "000001"
  params:
    customer_name: "{{ contact.first_name }}"
""",
    "t/order.yaml": """
zalo_zns:
  template_id: "000002"
  params:
    customer_name: "{{ contact.first_name | first_name_or('Quý khách') }}"
    order_code: "{{ order.order_number }}"
    total: "{{ order.total | vnd }}"
sms:
  text: "Don {{ order.order_number }} da duoc giao cho {{ order.carrier }}"
email:
  subject: "Đơn {{ order.order_number }}"
  text: "Tổng {{ order.total | vnd }}"
""",
}


def write_templates(root: Path) -> Path:
    """Write the test templates under ``root`` and return it."""
    for name, text in TEMPLATES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip(), encoding="utf-8")
    return root


def contact(session: Session, n: int = 1, **kw: Any) -> Contact:
    """A Vietnamese contact with email and phone."""
    values: dict[str, Any] = {
        "email": f"lan{n}@example.vn",
        "phone": f"+8491234{n:04d}",
        "first_name": "Lan",
        "last_name": "Nguyễn Thị",
        "timezone": "Asia/Ho_Chi_Minh",
        "attributes": {},
        "tags": [],
        "last_inbound_at": {},
    }
    values.update(kw)
    row = Contact(**values)
    session.add(row)
    session.flush()
    return row


def consent(session: Session, c: Contact, channel: str, status: str = "granted",
            purpose: str = "marketing") -> None:
    """Record a consent row."""
    session.add(Consent(contact_id=c.id, channel=channel, purpose=purpose, status=status,
                        source="test"))
    session.flush()


def message(session: Session, c: Contact, channel: str = "sms", template: str = "t/promo",
            purpose: str = "marketing", fallback: list[str] | None = None,
            step: str = "s1", **kw: Any) -> Message:
    """A queued outbox row (no enrollment)."""
    values: dict[str, Any] = {"status": "queued", "attempts": 0, "rendered": {}, "links": {}}
    values.update(kw)
    row = Message(step_key=step, contact_id=c.id, channel=channel, purpose=purpose,
                  template=template, fallback=fallback or [], **values)
    session.add(row)
    session.flush()
    return row
