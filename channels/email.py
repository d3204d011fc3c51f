"""E-mail over SMTP (stdlib smtplib).

``smtp://user:pass@host:587`` uses STARTTLS when the server advertises it;
``smtps://user:pass@host:465`` uses implicit TLS; ``smtp://127.0.0.1:2525``
is fine for a loopback relay. Credentials are never sent in clear text to a
non-loopback host. ``send_batch`` uses one SMTP session for the whole batch
and reconnects at most once if the server drops it.

======================================  ===============================
SMTP outcome                            result
======================================  ===============================
250 to DATA                             SendResult(Message-ID)
5xx to RCPT / DATA                      PermanentError (this address)
4xx to RCPT / DATA                      TransientError
sender refused, AUTH failed             TransientError (configuration)
refused / timeout / dropped connection  TransientError
======================================  ===============================
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import unquote, urlsplit

from channels.base import Channel, OutboundMessage, SendResult
from channels.errors import ChannelError, PermanentError, TransientError
from channels.mime import build_email, message_id

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to connect, parsed from an ``smtp://`` / ``smtps://`` URL."""

    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """Parse ``smtp[s]://[user:pass@]host[:port]``."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"expected smtp://host[:port] or smtps://..., got {url!r}")
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 587),
            implicit_tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def _reply_error(stage: str, code: int, text: bytes | str) -> ChannelError:
    detail = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    reason = f"SMTP {code} at {stage}: {detail}"
    if 500 <= code < 600:
        return PermanentError(reason, code=str(code))
    return TransientError(reason, code=str(code))


class EmailChannel(Channel):
    """Send e-mail through one SMTP server."""

    name = "email"
    batches = True

    def __init__(
        self,
        smtp_url: str,
        email_from: str,
        *,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server = SmtpServer.parse(smtp_url)
        self.email_from = email_from
        self.envelope_from = parseaddr(email_from)[1]
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()

    def send(self, msg: OutboundMessage) -> SendResult:
        """Send one message in its own SMTP session."""
        result = self.send_batch([msg])[0]
        if isinstance(result, ChannelError):
            raise result
        return result

    def send_batch(self, msgs: Sequence[OutboundMessage]) -> list[SendResult | ChannelError]:
        """Send all messages over one SMTP session (one reconnect if it drops)."""
        results: list[SendResult | ChannelError] = []
        smtp: smtplib.SMTP | None = None
        connects = 0
        try:
            for msg in msgs:
                if smtp is None or smtp.sock is None:
                    if connects == 2:
                        results.append(TransientError("SMTP session lost twice in one batch"))
                        continue
                    connects += 1
                    try:
                        smtp = self._connect()
                    except TransientError as exc:
                        results.extend([exc] * (len(msgs) - len(results)))
                        break
                try:
                    results.append(self._deliver(smtp, msg))
                except ChannelError as exc:
                    results.append(exc)
        finally:
            if smtp is not None and smtp.sock is not None:
                _quit(smtp)
        return results

    def _connect(self) -> smtplib.SMTP:
        srv = self.server
        smtp: smtplib.SMTP | None = None
        try:
            if srv.implicit_tls:
                smtp = smtplib.SMTP_SSL(
                    srv.host, srv.port, timeout=self.timeout, context=self.ssl_context
                )
            else:
                smtp = smtplib.SMTP(srv.host, srv.port, timeout=self.timeout)
            smtp.ehlo()
            tls = srv.implicit_tls
            if not tls and smtp.has_extn("starttls"):
                smtp.starttls(context=self.ssl_context)
                smtp.ehlo()
                tls = True
            if srv.username:
                if not tls and srv.host not in LOOPBACK:
                    raise TransientError(f"{srv.host} offers no TLS: refusing to send credentials")
                smtp.login(srv.username, srv.password or "")
            return smtp
        except smtplib.SMTPAuthenticationError as exc:
            _abort(smtp)
            raise TransientError(f"SMTP login failed: {exc}", code=str(exc.smtp_code)) from exc
        except (OSError, smtplib.SMTPException) as exc:
            _abort(smtp)
            raise TransientError(f"cannot connect to {srv.host}:{srv.port}: {exc!r}") from exc
        except TransientError:
            _abort(smtp)
            raise

    def _deliver(self, smtp: smtplib.SMTP, msg: OutboundMessage) -> SendResult:
        mime = build_email(msg, self.email_from)
        try:
            smtp.sendmail(self.envelope_from, [msg.to], mime.as_bytes())
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (450, b"recipient refused"))
            raise _reply_error("RCPT", code, text) from exc
        except smtplib.SMTPSenderRefused as exc:
            raise TransientError(
                f"SMTP {exc.smtp_code}: sender {exc.sender} refused", code=str(exc.smtp_code)
            ) from exc
        except smtplib.SMTPServerDisconnected as exc:
            _abort(smtp)
            raise TransientError(f"SMTP server closed the connection: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            raise _reply_error("DATA", exc.smtp_code, exc.smtp_error) from exc
        except (OSError, smtplib.SMTPException) as exc:
            _abort(smtp)
            raise TransientError(f"SMTP session failed: {exc!r}") from exc
        return SendResult(provider_message_id=message_id(msg.id, self.email_from))


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        _abort(smtp)


def _abort(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        smtp.close()
