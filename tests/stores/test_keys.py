"""Object keys: one pattern for the whole key, the same answer as checking each segment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import InvalidRequest
from gateway.model import is_identifier
from gateway.stores.base import validate_key

SEGMENT_CHARACTERS = st.sampled_from("aZ09._-/ \n.ä")


def accepted(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidRequest:
        return False
    return True


@given(st.text(SEGMENT_CHARACTERS, max_size=12) | st.lists(st.text(SEGMENT_CHARACTERS, min_size=1, max_size=130), max_size=3).map("/".join))
def test_a_key_is_valid_exactly_when_each_of_its_segments_is_an_identifier(key: str) -> None:
    assert accepted(key) == (key != "" and all(is_identifier(part) for part in key.split("/")))


@pytest.mark.parametrize("key", ["a/b\n", "a\n/b", "a/./b", "a/../b", "a./..b", "a/.b", "a/", "/a", "a//b"])
def test_a_key_with_a_newline_a_dot_segment_or_an_empty_segment_is_refused(key: str) -> None:
    assert not accepted(key)
