"""SMS segment counting, with examples and hypothesis properties."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from channels.segments import GSM7_BASIC, GSM7_EXTENSION, SegmentCount, count_segments, is_gsm7

BASIC = "".join(sorted(GSM7_BASIC))
EXT = "".join(sorted(GSM7_EXTENSION))


def test_examples() -> None:
    assert count_segments("") == SegmentCount("gsm7", 0, 1)
    assert count_segments("a" * 160).segments == 1
    assert count_segments("a" * 161).segments == 2
    assert count_segments("a" * 306).segments == 2
    assert count_segments("a" * 307).segments == 3
    assert count_segments("€" * 80).units == 160 and count_segments("€" * 80).segments == 1
    assert count_segments("€" * 81).segments == 2


def test_vietnamese_is_ucs2_and_costs_more() -> None:
    text = "[QC] Chào Nguyễn Văn An, đơn hàng đã giao. Từ chối: soạn TC gửi 8079"
    info = count_segments(text)
    assert info.encoding == "ucs2" and info.units == len(text)
    assert info.segments == 1 if len(text) <= 70 else 2
    assert count_segments("ễ" * 70).segments == 1
    assert count_segments("ễ" * 71).segments == 2
    assert count_segments("ễ" * 134).segments == 2
    assert count_segments("ễ" * 135).segments == 3


def test_emoji_counts_two_units_and_is_not_split() -> None:
    assert count_segments("😀" * 35).units == 70
    assert count_segments("😀" * 35).segments == 1
    # 66 units + one surrogate pair that does not fit the 67-unit first part
    assert count_segments("ễ" * 66 + "😀" + "ễ" * 10).segments == 2
    assert count_segments("a" * 152 + "€" + "a" * 10).segments == 2  # escape not split


@given(st.text(alphabet=BASIC, max_size=1000))
def test_basic_gsm7_matches_the_formula(text: str) -> None:
    info = count_segments(text)
    assert info.encoding == "gsm7" and info.units == len(text)
    expected = 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    assert info.segments == expected


@given(st.text(alphabet=BASIC + EXT, max_size=800))
def test_extension_chars_cost_two_septets(text: str) -> None:
    info = count_segments(text)
    assert info.units == len(text) + sum(ch in GSM7_EXTENSION for ch in text)
    assert info.segments >= (1 if info.units <= 160 else math.ceil(info.units / 153))
    assert info.segments <= max(1, math.ceil(info.units / 152))


@given(st.text(min_size=1, max_size=600))
def test_any_text_bounds_and_encoding(text: str) -> None:
    info = count_segments(text)
    assert info.encoding == ("gsm7" if is_gsm7(text) else "ucs2")
    single, part = (160, 153) if info.encoding == "gsm7" else (70, 67)
    if info.units <= single:
        assert info.segments == 1
    else:
        assert math.ceil(info.units / part) <= info.segments <= math.ceil(info.units / (part - 1))


@given(st.text(max_size=300), st.text(max_size=300))
def test_appending_never_reduces_segments(a: str, b: str) -> None:
    assert count_segments(a + b).segments >= count_segments(a).segments
