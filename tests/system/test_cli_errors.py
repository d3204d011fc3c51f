"""User mistakes through the real `mactl` process: one clear line, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.system.procs import MACTL, base_env, mactl_ok

HUGE = "99999999999999999999"  # beyond BIGINT
BROKEN_SEQUENCE = """\
sequence: broken
name: Hỏng
trigger: {event: lead.captured
steps:
  - send: {channel: email, template: lead_capture/welcome}
"""


def run_all(
    commands: dict[str, list[str]], env: dict[str, str], cwd: Path
) -> dict[str, tuple[int, str, str]]:
    """Run the commands concurrently (each is a separate process); name -> (code, out, err)."""
    started = {
        name: subprocess.Popen(
            [*MACTL, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in commands.items()
    }
    results = {}
    for name, proc in started.items():
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        results[name] = (proc.returncode, out, err)
    return results


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_system_cli_user_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    env = base_env(DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}")
    mactl_ok("db", "upgrade", env=env, cwd=tmp_path)
    broken = tmp_path / "playbooks" / "sequences" / "broken.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text(BROKEN_SEQUENCE, encoding="utf-8")

    results = run_all(
        {
            "apply": ["apply", str(tmp_path / "playbooks")],
            "contact": ["contacts", "show", "nobody@example.com"],
            "empty_ref": ["contacts", "show", ""],
            "superscript": ["contacts", "show", "²"],
            "render_bigint": ["templates", "render", "lead_capture/welcome", "--contact", HUGE],
            "replay_bigint": ["dlq", "replay", HUGE],
            "replay_none": ["dlq", "replay"],
            "worker": ["worker"],
            "now": ["scheduler", "--once", "--now", "next tuesday"],
        },
        env,
        tmp_path,
    )
    for name, (code, out, err) in results.items():
        assert "Traceback" not in out + err, f"{name}: traceback\n{err}"
        assert code == 2, f"{name}: exit {code}\nstdout:{out}\nstderr:{err}"
        assert len(error_lines(err)) == 1, f"{name}: not one line:\n{err}"

    apply_err = error_lines(results["apply"][2])[0]
    assert f"{broken}:4:" in apply_err, apply_err
    assert "YAML" in apply_err
    contact_err = error_lines(results["contact"][2])[0]
    assert "nobody@example.com" in contact_err, contact_err
    assert "REDIS_URL" in error_lines(results["worker"][2])[0]
    assert "--now" in error_lines(results["now"][2])[0]
    assert error_lines(results["empty_ref"][2])[0].startswith("error: CONTACT: ")
    assert "empty" in error_lines(results["empty_ref"][2])[0]
    assert "'²' is not a contact id" in error_lines(results["superscript"][2])[0]
    assert "--contact" in error_lines(results["render_bigint"][2])[0]
    for name in ("render_bigint", "replay_bigint"):
        assert f"{HUGE} is too large" in error_lines(results[name][2])[0], name
    assert "--all" in error_lines(results["replay_none"][2])[0]
