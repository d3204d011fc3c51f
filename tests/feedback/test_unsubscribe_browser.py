"""The unsubscribe page in a real headless Chromium against a real uvicorn server.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON commands on fd 3, replies on fd 4, each ending with a NUL byte), so no WebDriver or
websocket library is needed. With CI=true a missing Chromium fails the test.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session

from automation import links
from automation.core.config import Settings, get_settings
from automation.core.models import Consent, Contact, Event, Message, Suppression

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
]


def chromium_binary() -> str:
    """Path of the installed Chromium; fails under CI, skips elsewhere when missing."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    message = "Chromium is not installed: apt-get install -y chromium chromium-driver"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


class DevTools:
    """A minimal Chrome DevTools Protocol client over the debugging pipe."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds() -> None:  # runs in the child: Chromium expects fds 3 and 4
            high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)  # dup2 targets are inheritable; nothing else is (PEP 446)
            os.dup2(high_w, 4)

        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds,
            close_fds=False,  # close_fds would close 3 and 4 after preexec_fn
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session_id: str | None = None

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer from Chromium")
            ready, _, _ = select.select([self._from_chrome], [], [], remaining)
            if ready:
                chunk = os.read(self._from_chrome, 65536)
                if not chunk:
                    raise RuntimeError("Chromium closed the debugging pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, timeout: float = 20, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events seen meanwhile are kept)."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session_id and not method.startswith("Target."):
            command["sessionId"] = self.session_id
        os.write(self._to_chrome, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_event(self, method: str, timeout: float = 20) -> dict[str, Any]:
        """Wait for (or find already received) an event of ``method``."""
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(index)
            self.events.append(self._read(deadline))

    def open_page(self) -> None:
        """Create a tab and attach to it (flattened session)."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session_id = self.call(
            "Target.attachToTarget", targetId=target, flatten=True
        )["sessionId"]
        self.call("Page.enable")

    def navigate(self, url: str) -> None:
        """Load ``url`` and wait for its load event."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """Run JavaScript in the page and return its value."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press + release) at the centre of the element."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        self.events.clear()
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=1)

    def close(self) -> None:
        """Stop the browser."""
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, app_factory: Callable[[], Any]
) -> Iterator[str]:
    """A real uvicorn server for the app on loopback; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("PUBLIC_BASE_URL", base)
    monkeypatch.setenv("SHOP_NAME", "Cửa hàng Hoa Sen")
    get_settings.cache_clear()
    config = uvicorn.Config(app_factory(), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield base
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    """Headless Chromium with a fresh profile, one tab attached."""
    tools = DevTools(chromium_binary(), tmp_path / "profile")
    try:
        tools.open_page()
        yield tools
    finally:
        tools.close()


def test_unsubscribe_in_chromium(
    live_server: str, browser: DevTools, session: Session, make_message: Any
) -> None:
    msg: Message = make_message(email="lan.nguyen@example.vn", address="lan.nguyen@example.vn",
                                first_name="Lan")
    contact = session.get(Contact, msg.contact_id)
    queued = make_message(contact=contact, status="queued", address="lan.nguyen@example.vn",
                          step_key="s2")
    url = links.unsubscribe_url(msg.id)
    assert url.startswith(live_server + "/u/")

    browser.navigate(url)
    assert browser.evaluate("document.documentElement.lang") == "vi"
    text = browser.evaluate("document.body.innerText")
    assert "Bạn có chắc muốn ngừng nhận tin khuyến mãi qua email" in text
    assert "Cửa hàng Hoa Sen" in text and "l***@example.vn" in text
    assert browser.evaluate("document.querySelector('button#confirm').innerText") == "Hủy đăng ký"
    session.expire_all()
    assert session.scalars(sql_select(Consent)).all() == []  # GET alone changes nothing

    browser.click("button#confirm")
    browser.wait_event("Page.loadEventFired")
    assert browser.evaluate("document.querySelector('main').id") == "done"
    done = browser.evaluate("document.body.innerText")
    assert "Bạn đã hủy đăng ký thành công." in done
    assert browser.evaluate("location.href") == url  # the form posted back to the same URL

    session.expire_all()
    consent = session.scalars(sql_select(Consent)).one()
    assert (consent.channel, consent.purpose, consent.status, consent.source) == (
        "email", "marketing", "denied", "unsubscribe_page"
    )
    sup = session.scalars(sql_select(Suppression)).one()
    assert (sup.address, sup.reason, sup.scope) == ("lan.nguyen@example.vn", "unsubscribed",
                                                    "marketing")
    assert session.get(Message, queued.id).status == "skipped"  # type: ignore[union-attr]
    assert session.scalars(sql_select(Event.type)).all() == ["contact.unsubscribed"]

    browser.navigate(url)  # coming back shows it is already done
    assert browser.evaluate("document.getElementById('already') !== null") is True
    browser.navigate(url[:-3] + "abc")
    assert browser.evaluate("document.querySelector('main').id") == "invalid"
