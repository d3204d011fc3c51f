"""jsoncodec.loads on request bodies: orjson for the common case, the standard library
where orjson would lose digits (it reads integers beyond 64 bits as floats)."""

from __future__ import annotations

import json

import pytest

from automation.core.jsoncodec import has_wide_integer, loads


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": 18446744073709551616}',  # 2**64: orjson alone gives 1.8446744073709552e+19
        b'{"id": -9223372036854775809}',  # below -2**63
        b'[123456789012345678901234567890]',
        b'{"ids": [1, 2, 99999999999999999999]}',
        b'{"id": 18446744073709551615, "n": -9223372036854775808}',  # the limits themselves
    ],
)
def test_long_integers_keep_every_digit(body: bytes) -> None:
    assert has_wide_integer(body)  # 20 digits, or a minus and 19: decided by the stdlib
    assert loads(body) == json.loads(body)


def test_a_shop_order_goes_through_orjson() -> None:
    body = b'{"price": "1250000.00", "phone": "+84912345678", "id": 450789469, "n": -5}'
    assert not has_wide_integer(body)
    assert loads(body) == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": 18446744073709551616}',  # read as a float: valid all the same
        b'{"a": NaN}',  # orjson refuses, the standard library accepts
        b'{"a": "\\ud800"}',  # a lone surrogate: likewise
    ],
)
def test_a_check_only_read_accepts_what_the_exact_read_accepts(body: bytes) -> None:
    """exact=False (the request path of a delivery stored raw) skips the digit search;
    it must not refuse a body the exact read (the worker's) accepts."""
    loads(body)
    loads(body, exact=False)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"a": 1' + b"0" * 5000 + b"}", ValueError),  # over 4,300 digits
        (b'{"a": [1,]}', json.JSONDecodeError),
        (b'{"a": "\xff"}', UnicodeDecodeError),
    ],
)
def test_a_check_only_read_refuses_what_the_exact_read_refuses(
    body: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        loads(body)
    with pytest.raises(error):
        loads(body, exact=False)
