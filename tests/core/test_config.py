"""Settings: a bad environment stops the process with one line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from automation.core.config import DEV_SECRET_KEY, SettingsError, load_settings


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PROVIDER_RATE_LIMITS", "fast", "PROVIDER_RATE_LIMITS: not valid JSON"),
        ("PROVIDER_RATE_LIMITS", '{"zalo_zns": -5}', "zalo_zns=-5.0 must be a number >= 0"),
        ("FREQUENCY_CAPS", "three", "FREQUENCY_CAPS: not valid JSON"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: "),
        ("REDIS_URL", "localhost:6379", "REDIS_URL: "),
        ("DEFAULT_TIMEZONE", "Mars/Olympus", "DEFAULT_TIMEZONE: "),
    ],
)
def test_bad_setting_is_one_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("configuration error: ")
    assert expected in message
    assert "\n" not in message


def test_postgres_needs_a_real_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/automation")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        load_settings()
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    assert load_settings().database_url == "postgresql+psycopg://app@db/automation"


def test_rate_limit_zero_means_unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVIDER_RATE_LIMITS", '{"zalo_zns": 0, "esms": 30}')
    assert load_settings().provider_rate_limits == {"zalo_zns": 0.0, "esms": 30.0}


@pytest.mark.parametrize("value", ["", "short-key", "x" * 31])
def test_postgres_refuses_an_empty_or_short_secret_key(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/automation")
    monkeypatch.setenv("SECRET_KEY", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith("configuration error: SECRET_KEY: ")
    assert "32 characters" in str(caught.value) and "\n" not in str(caught.value)


def test_embedded_default_generates_and_keeps_a_secret_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'automation.db'}")
    for value in (None, ""):
        if value is None:
            monkeypatch.delenv("SECRET_KEY", raising=False)
        else:
            monkeypatch.setenv("SECRET_KEY", value)
        first = load_settings().secret_key
        assert len(first) >= 32 and first != DEV_SECRET_KEY
        kept = tmp_path / "data" / "automation.db.secret_key"
        assert kept.read_text().strip() == first
        assert kept.stat().st_mode & 0o077 == 0
        assert load_settings().secret_key == first  # the same key after a restart
    said = capsys.readouterr().err
    assert said.count("generated one and saved it in") == 1 and str(kept) in said
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    assert load_settings().secret_key == "k" * 40
