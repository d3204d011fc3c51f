"""`mactl apply PATH...`: validate segment and sequence YAML, print the plan, then write it."""

from __future__ import annotations

from pathlib import Path

import typer

from admin_cli.output import (
    EXIT_USER_ERROR,
    JSON,
    console,
    load_settings,
    print_error,
    print_json,
    print_table,
)
from automation.apply import ApplyError, Plan, apply_paths
from automation.core.db import session_scope
from automation.privacy import audit

app = typer.Typer()


def print_plan(plan: Plan) -> None:
    """The plan as a Rich table plus a one-line summary."""
    rows = []
    for item in plan.items:
        detail = (
            f"{item.members} contacts match now"
            if item.kind == "segment"
            else f"v{item.version}, {len(item.templates)} templates"
        )
        rows.append([item.kind, item.key, item.action, detail, item.file])
    print_table("Plan", ["kind", "key", "action", "detail", "file"], rows)
    counts = plan.counts()
    verb = "applied" if plan.applied else "dry run, nothing written"
    console().print(
        f"{counts['created']} to create, {counts['changed']} to change, "
        f"{counts['unchanged']} unchanged ({verb})",
        markup=False,
    )


@app.command("apply")
def apply_command(
    paths: list[Path] = typer.Argument(  # noqa: B008
        ..., help="YAML files or folders (e.g. playbooks/).", show_default=False
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and plan, write nothing."),
    as_json: bool = JSON,
) -> None:
    """Validate every segment and sequence under PATH..., print the plan, then write it."""
    load_settings()
    with session_scope() as session:
        try:
            plan = apply_paths(session, paths, dry_run=dry_run)
            if plan.applied:
                audit.record(
                    session,
                    "apply",
                    None,
                    {"paths": [str(p) for p in paths], "counts": plan.counts()},
                )
        except ApplyError as exc:
            if as_json:
                print_json({"applied": False, "problems": exc.problems})
            for problem in exc.problems:
                print_error(problem)
            raise typer.Exit(EXIT_USER_ERROR) from None
    if as_json:
        print_json(plan.to_dict())
    else:
        for warning in plan.warnings:
            console().print(f"warning: {warning}", style="yellow", markup=False, soft_wrap=True)
        print_plan(plan)
