"""read_json: orjson for the common case, the standard library where orjson would lose
digits (it reads integers beyond 64 bits as floats)."""

from __future__ import annotations

import json

import pytest

from automation.inbox.mapping import has_wide_integer, read_json


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
    assert read_json(body) == json.loads(body)


def test_a_shop_order_goes_through_orjson() -> None:
    body = b'{"price": "1250000.00", "phone": "+84912345678", "id": 450789469, "n": -5}'
    assert not has_wide_integer(body)
    assert read_json(body) == json.loads(body)
