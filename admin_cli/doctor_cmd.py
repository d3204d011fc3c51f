"""`mactl doctor`: each channel's state and pauses, ZNS example ids, Zalo tokens, DB, Redis."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from admin_cli.output import JSON, console, load_settings, print_json, print_table
from automation.core.config import Settings

app = typer.Typer()


def zns_example_warnings(settings: Settings) -> list[str]:
    """ZNS templates still sending the shipped example id (not overridden in configuration)."""
    from automation.messages.errors import TemplateProblem
    from automation.messages.lookup import list_templates, load_template
    from automation.messages.zns import effective_zns_id

    warnings = []
    for name in list_templates(settings):
        try:
            data = load_template(name, settings)
        except TemplateProblem as exc:
            warnings.append(str(exc))
            continue
        variants = [(settings.default_locale, data)] + [
            (loc, v) for loc, v in (data.get("locales") or {}).items() if isinstance(v, dict)
        ]
        for loc, variant in variants:
            zns = variant.get("zalo_zns")
            if not isinstance(zns, dict):
                continue
            shipped = str(zns.get("template_id") or "")
            if effective_zns_id(name, loc, shipped, settings) == shipped:
                warnings.append(
                    f"{name} [{loc}]: ZNS template id {shipped!r} is the shipped example; "
                    f'set ZNS_TEMPLATE_IDS=\'{{"{name}": "<your approved id>"}}\''
                )
    return warnings


def provider_state(settings: Settings) -> tuple[list[dict[str, str]], list[str]]:
    """Channel pauses in force and the Zalo refresh token warning (read from the database)."""
    from sqlalchemy.exc import SQLAlchemyError

    from automation.core.clock import now
    from automation.core.db import session_scope
    from automation.delivery.pauses import active_pauses
    from automation.delivery.providers.zalo import refresh_warnings

    at = now()
    try:
        with session_scope(settings) as session:
            pauses = [
                {"channel": p.channel, "until": p.until.isoformat(), "reason": p.reason}
                for p in active_pauses(session, at)
            ]
            return pauses, refresh_warnings(session, settings, at)
    except SQLAlchemyError:
        return [], []


def _check_db(settings: Settings) -> tuple[bool, str]:
    from sqlalchemy import text

    from automation.core.db import get_engine

    try:
        with get_engine(settings).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return False, str(exc).splitlines()[0]
    return True, settings.database_url.split("@")[-1]


def _check_redis(settings: Settings) -> tuple[bool, str]:
    if not settings.redis_url:
        return True, "not configured: in-process broker"
    import redis

    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        return False, str(exc).splitlines()[0]
    return True, settings.redis_url.split("@")[-1]


def _pools(settings: Settings) -> dict[str, int]:
    """Open advertising SMS pools, rows waiting, DNC list size."""
    from automation.core.db import session_scope
    from automation.delivery.pools import summary

    with session_scope(settings) as session:
        return summary(session)


@app.command("doctor")
def doctor(as_json: bool = JSON) -> None:
    """Show how each channel will send, warn about example ZNS ids, check DB and Redis."""
    from automation.delivery.channels import channel_states

    settings = load_settings()
    states = channel_states(settings)
    db_ok, db_detail = _check_db(settings)
    redis_ok, redis_detail = _check_redis(settings)
    pauses, token_warnings = provider_state(settings) if db_ok else ([], [])
    warnings = zns_example_warnings(settings) + token_warnings
    report: dict[str, Any] = {
        "channels": [
            {
                "channel": s.channel,
                "provider": s.provider,
                "configured": s.configured,
                "detail": s.detail,
            }
            for s in states
        ],
        "paused": pauses,
        "database": {"ok": db_ok, "detail": db_detail},
        "redis": {"ok": redis_ok, "detail": redis_detail},
        "compliance_profile": settings.compliance_profile,
        "sms_pools": _pools(settings) if db_ok else None,
        "warnings": warnings,
    }
    if as_json:
        print_json(report)
    else:
        print_table(
            "channels",
            ["channel", "state", "provider", "detail"],
            [
                [
                    s.channel,
                    "configured" if s.configured else "file transport",
                    s.provider,
                    s.detail,
                ]
                for s in states
            ],
        )
        out = console()
        for p in pauses:
            out.print(
                f"[yellow]paused:[/yellow] {p['channel']} until {p['until']} "
                f"({escape(p['reason'])}); the step's fallback goes meanwhile",
                markup=True,
                highlight=False,
            )
        for label, ok, detail in (
            ("database", db_ok, db_detail),
            ("redis", redis_ok, redis_detail),
        ):
            colour = "green" if ok else "red"
            out.print(
                f"{label}: [{colour}]{'ok' if ok else 'unreachable'}[/{colour}] {detail}",
                markup=True,
                highlight=False,
            )
        out.print(f"compliance profile: {settings.compliance_profile}", highlight=False)
        if report["sms_pools"] is not None:
            pools = report["sms_pools"]
            out.print(
                f"advertising SMS pools: {pools['open_pools']} open, {pools['rows_waiting']} "
                f"rows waiting; do-not-advertise list: {pools['dnc_numbers']} numbers",
                highlight=False,
            )
        for warning in warnings:
            out.print(f"[yellow]warning:[/yellow] {escape(warning)}", markup=True, highlight=False)
    if not (db_ok and redis_ok):
        raise typer.Exit(1)
