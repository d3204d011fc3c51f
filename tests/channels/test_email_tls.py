"""EmailChannel TLS and AUTH paths against real aiosmtpd servers."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from channels.base import OutboundMessage
from channels.email import EmailChannel
from channels.errors import TransientError
from tests.channels.conftest import SmtpRecorder, free_port

FROM = "Shop <shop@an.example.vn>"
MSG = OutboundMessage(id=5, channel="email", to="an@example.vn", text="xin chào", subject="Hi")


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )  # fmt: skip
    return crt, key


class Authenticator:
    def __init__(self) -> None:
        self.logins: list[tuple[bytes, bytes]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        self.logins.append((data.login, data.password))
        ok = data.password == b"p@ss"
        return AuthResult(success=ok, handled=ok)  # handled=False: server sends 535


class TlsRecorder(SmtpRecorder):
    def __init__(self) -> None:
        super().__init__()
        self.tls_flags: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.tls_flags.append(server.transport.get_extra_info("ssl_object") is not None)
        return await super().handle_DATA(server, session, envelope)


def serve(**kwargs: Any) -> Iterator[tuple[TlsRecorder, Authenticator, int]]:
    handler, auth, port = TlsRecorder(), Authenticator(), free_port()
    controller = Controller(
        handler, hostname=kwargs.pop("hostname", "127.0.0.1"), port=port,
        authenticator=auth, **kwargs,
    )  # fmt: skip
    controller.start()
    try:
        yield handler, auth, port
    finally:
        controller.stop()


def client_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert[0]))


def server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def test_starttls_then_login(cert: tuple[Path, Path]) -> None:
    for handler, auth, port in serve(tls_context=server_context(cert), require_starttls=True):
        url = f"smtp://mailer:p%40ss@127.0.0.1:{port}"
        EmailChannel(url, FROM, ssl_context=client_context(cert)).send(MSG)
        assert handler.tls_flags == [True]
        assert auth.logins == [(b"mailer", b"p@ss")]


def test_implicit_tls_smtps(cert: tuple[Path, Path]) -> None:
    for handler, _, port in serve(server_hostname="127.0.0.1", ssl_context=server_context(cert)):
        url = f"smtps://127.0.0.1:{port}"
        EmailChannel(url, FROM, ssl_context=client_context(cert)).send(MSG)
        assert handler.tls_flags == [True]
        assert len(handler.envelopes) == 1


def test_untrusted_certificate_is_transient(cert: tuple[Path, Path]) -> None:
    for handler, _, port in serve(tls_context=server_context(cert)):
        with pytest.raises(TransientError, match="cannot connect"):
            EmailChannel(f"smtp://127.0.0.1:{port}", FROM).send(MSG)  # default CA store
        assert handler.envelopes == []


def test_wrong_password_is_transient() -> None:
    for handler, auth, port in serve(auth_require_tls=False):
        with pytest.raises(TransientError, match="login failed"):
            EmailChannel(f"smtp://mailer:nope@127.0.0.1:{port}", FROM).send(MSG)
        assert auth.logins and set(auth.logins) == {(b"mailer", b"nope")}
        assert handler.envelopes == []


def test_no_credentials_in_clear_text_to_a_non_loopback_name() -> None:
    # 127.0.0.2 is reachable but not in the loopback allow-list: no STARTTLS
    # offered, so the adapter must refuse before AUTH.
    for handler, auth, port in serve(hostname="127.0.0.2", auth_require_tls=False):
        with pytest.raises(TransientError, match="no TLS"):
            EmailChannel(f"smtp://mailer:p%40ss@127.0.0.2:{port}", FROM).send(MSG)
        assert auth.logins == [] and handler.envelopes == []
