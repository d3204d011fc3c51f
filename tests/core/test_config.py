"""Settings: a bad environment stops the process with one line naming the variable."""

from __future__ import annotations

import pytest

from automation.core.config import SettingsError, load_settings


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
