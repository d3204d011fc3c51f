"""Decree 91 decorations: the [QC] label, the SMS opt-out, the e-mail unsubscribe footer."""

from __future__ import annotations

import pytest

from automation.core.config import Settings
from automation.messages.compliance import decorate_email, decorate_sms, label

UNSUB = "https://t.example.vn/u/abc"


def test_label_is_added_once() -> None:
    assert label("Giảm 10%", "[QC]") == "[QC] Giảm 10%"
    assert label("  [QC] Giảm 10%", "[QC]") == "  [QC] Giảm 10%"
    assert label("Giảm 10%", None) == "Giảm 10%"


def test_sms_gets_label_first_and_optout_last_once() -> None:
    settings = Settings(compliance_profile="decree91", secret_key="k" * 32)
    once = decorate_sms("Shop: giam 10%", UNSUB, settings)
    assert once == f"[QC] Shop: giam 10% Tu choi QC: {UNSUB}"
    assert decorate_sms(once, UNSUB, settings) == once


def test_email_gets_label_and_footer_unless_present() -> None:
    settings = Settings(compliance_profile="decree91", shop_name="Shop & Co", secret_key="k" * 32)
    subject, html, text = decorate_email(
        "Ưu đãi", "<html><body><p>Chào</p></body></html>", "Chào", UNSUB, "vi", settings
    )
    assert subject == "[QC] Ưu đãi"
    assert html is not None
    assert html.endswith(f'<a href="{UNSUB}">Hủy đăng ký</a></p></body></html>')
    assert "Shop &amp; Co" in html
    assert text.endswith(f"từ Shop & Co. Hủy đăng ký: {UNSUB}")
    kept = decorate_email("s", f'<a href="{UNSUB}">x</a>', f"bye {UNSUB}", UNSUB, "en", settings)
    assert kept[1:] == (f'<a href="{UNSUB}">x</a>', f"bye {UNSUB}")


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_profile_none_adds_nothing(channel: str) -> None:
    settings = Settings(compliance_profile="none", secret_key="k" * 32)
    if channel == "sms":
        assert decorate_sms("hi", UNSUB, settings) == "hi"
    else:
        assert decorate_email("s", "<p>h</p>", "h", UNSUB, "vi", settings) == ("s", "<p>h</p>", "h")
