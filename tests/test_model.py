"""Identifiers and country codes: what the gateway accepts as a path segment, key or jurisdiction."""

from __future__ import annotations

import pytest

from gateway.model import is_country, is_identifier


@pytest.mark.parametrize("value", ["aoife", "mail-1", "photo.jpg", "A_9", "x" * 128])
def test_a_plain_identifier_is_accepted(value: str) -> None:
    assert is_identifier(value)


@pytest.mark.parametrize("value", ["aoife\n", "aoife\r\n", "\naoife", "a..b", ".hidden", "x" * 129, "", "a/b", "ä"])
def test_an_identifier_with_a_newline_dots_or_other_characters_is_refused(value: str) -> None:
    assert not is_identifier(value)


def test_a_country_code_with_a_trailing_newline_is_refused() -> None:
    assert is_country("IE")
    assert not is_country("IE\n")
