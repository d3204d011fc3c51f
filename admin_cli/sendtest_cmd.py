"""`mactl send-test NAME --to ADDRESS --channel C`: one real message through the configured adapter.

Rendered with the sample data (or ``--contact ID``'s fields) and sent as transactional,
without writing to the database: tracked links are not rewritten and the message id
(the provider idempotency key) is derived from the current time.
"""

from __future__ import annotations

import time

import typer

from admin_cli.output import UserError, console, load_settings, print_json, user_errors
from automation.messages.errors import TemplateProblem
from automation.messages.lookup import KINDS
from automation.messages.render import render


def send_test(
    name: str = typer.Argument(..., help="Template name, e.g. order_status/shipped."),
    to: str = typer.Option(..., "--to", help="E-mail, phone (E.164 or 0...), Zalo id or PSID."),
    channel: str = typer.Option(..., "--channel", help=f"One of {', '.join(KINDS)}."),
    locale: str | None = typer.Option(None, "--locale", help="vi (default) or en."),
    contact: int | None = typer.Option(None, "--contact", help="Use this contact's fields."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Send one message now and print the provider's answer."""
    from admin_cli.templates_cmd import _context
    from automation.contacts.identity import AddressError, normalize_email, normalize_phone
    from automation.delivery.channels import build_adapter
    from automation.messages.zns import effective_zns_id
    from channels.base import OutboundMessage
    from channels.errors import ChannelError

    settings = load_settings()
    with user_errors():
        if channel not in KINDS:
            raise UserError(f"--channel {channel!r}: use one of {', '.join(KINDS)}")
        try:
            if channel == "email":
                address = normalize_email(to)
            elif channel in ("sms", "zalo_zns"):
                address = normalize_phone(to, settings.default_region)
            else:
                address = to.strip()
        except AddressError as exc:
            raise UserError(f"--to: {exc}") from None
        if not address:
            raise UserError("--to: empty address")
        try:
            out = render(name, channel, _context(contact), locale, settings=settings)
        except TemplateProblem as exc:
            raise UserError(str(exc)) from None
        if channel == "zalo_zns":
            out.template_id = effective_zns_id(name, out.locale, out.template_id or "", settings)
        message = OutboundMessage(
            id=int(time.time() * 1000) % 2_000_000_000,
            channel=channel,
            to=address,
            text=out.text,
            subject=out.subject,
            html=out.html,
            template_id=out.template_id,
            template_data=dict(out.params),
            buttons=list(out.buttons),
            window_open=True,
            message_tag="ACCOUNT_UPDATE",
        )
        adapter, provider = build_adapter(channel, settings)
        try:
            result = adapter.send(message)
        except ChannelError as exc:
            raise UserError(f"{provider} refused the message: {exc.reason}") from None
        finally:
            adapter.close()
    answer = {
        "provider": provider,
        "to": address,
        "provider_message_id": result.provider_message_id,
        "segments": result.segments,
        "detail": result.detail,
    }
    if as_json:
        print_json(answer)
    else:
        console().print(
            f"sent via {provider} to {address}: {result.provider_message_id}", highlight=False
        )


def register(root: typer.Typer) -> None:
    """Add `mactl send-test`."""
    root.command("send-test")(send_test)
