"""`mactl send-test NAME --to ADDRESS --channel C`: one real message through the configured adapter.

Rendered with the sample data (or ``--contact ID``'s fields) and sent as transactional,
without writing to the database: tracked links are not rewritten and the message id
(the provider idempotency key) is derived from the current time.
"""

from __future__ import annotations

import time

import typer

from admin_cli.contact_ref import CONTACT_HELP
from admin_cli.output import JSON, console, load_settings, print_json
from admin_cli.template_context import template_context
from automation.core.errors import DefinitionError, InputError
from automation.core.vocabulary import CHANNELS
from automation.messages.errors import TemplateProblem
from automation.messages.render import render

app = typer.Typer()


@app.command("send-test")
def send_test(
    name: str = typer.Argument(..., help="Template name, e.g. order_status/shipped."),
    to: str = typer.Option(..., "--to", help="E-mail, phone (E.164 or 0...), Zalo id or PSID."),
    channel: str = typer.Option(..., "--channel", help=f"One of {', '.join(CHANNELS)}."),
    locale: str | None = typer.Option(None, "--locale", help="vi (default) or en."),
    contact: str | None = typer.Option(
        None, "--contact", metavar="CONTACT", help=f"Use this contact's fields. {CONTACT_HELP}"
    ),
    as_json: bool = JSON,
) -> None:
    """Send one message now and print the provider's answer."""
    from automation.contacts.identity import AddressError, normalize_email, normalize_phone
    from automation.core.vocabulary import ADDRESS_FIELD
    from automation.delivery.channels import build_adapter
    from automation.messages.zns import effective_zns_id
    from channels.base import OutboundMessage
    from channels.errors import ChannelError

    settings = load_settings()
    if channel not in CHANNELS:
        raise InputError(
            f"{channel!r} is not a channel",
            where="--channel",
            fix=f"use one of {', '.join(CHANNELS)}",
        )
    field = ADDRESS_FIELD[channel]
    try:
        if field == "email":
            address = normalize_email(to)
        elif field == "phone":
            address = normalize_phone(to, settings.default_region)
        else:
            address = to.strip()
    except AddressError as exc:
        raise InputError(exc.message, where="--to", fix=f"give a {field} for {channel}") from None
    if not address:
        raise InputError("empty address", where="--to", fix=f"give the {field} to send to")
    try:
        out = render(name, channel, template_context(settings, contact), locale, settings=settings)
    except TemplateProblem as exc:
        raise DefinitionError(str(exc)) from None
    if channel == "zalo_zns":  # the approved ZNS template id may be overridden in settings
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
        raise InputError(
            f"{provider} refused the message: {exc.reason}",
            where="send-test",
            fix="check the address and the provider settings (`mactl doctor`)",
        ) from None
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
