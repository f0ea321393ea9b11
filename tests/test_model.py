"""Identifiers, country codes and times: what the gateway accepts as a path segment, key or
jurisdiction, and how it writes the time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.model import clock_text, is_country, is_identifier, isoformat, system_clock


@pytest.mark.parametrize("value", ["aoife", "mail-1", "photo.jpg", "A_9", "x" * 128])
def test_a_plain_identifier_is_accepted(value: str) -> None:
    assert is_identifier(value)


@pytest.mark.parametrize("value", ["aoife\n", "aoife\r\n", "\naoife", "a..b", ".hidden", "x" * 129, "", "a/b", "ä"])
def test_an_identifier_with_a_newline_dots_or_other_characters_is_refused(value: str) -> None:
    assert not is_identifier(value)


def test_a_country_code_with_a_trailing_newline_is_refused() -> None:
    assert is_country("IE")
    assert not is_country("IE\n")


@given(st.integers(min_value=0, max_value=4_102_444_800 * 10**9))  # 1970 to 2100, in nanoseconds
@example(1_795_933_800 * 10**9)  # a whole second: no fraction
@example(1_795_933_800 * 10**9 + 999)  # under a microsecond past it: no fraction either
def test_the_system_clock_text_is_the_isoformat_of_the_same_instant(nanos: int) -> None:
    instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=nanos // 1000)
    with mock.patch("gateway.model.time.time_ns", return_value=nanos):
        assert clock_text(system_clock)() == isoformat(instant)


def test_the_text_of_any_other_clock_is_the_isoformat_of_its_time() -> None:
    moment = datetime(2026, 11, 29, 6, 30, tzinfo=UTC)
    assert clock_text(lambda: moment)() == "2026-11-29T06:30:00Z"
