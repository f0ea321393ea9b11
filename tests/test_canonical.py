"""Canonical JSON: the fast path writes exactly what the RFC 8785 reference writes."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.canonical import canonical, canonical_checked

# Every JSON shape, including the ones the fast path must hand to the reference:
# floats, integers beyond 2**53, keys outside the Basic Multilingual Plane,
# control characters and lone surrogates.
texts = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
    | st.sampled_from(["\u2028", "\x7f", "\x00\x1f", '"\\', "\U0001f600", "\ud800", "\ue000"])
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=20)




def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# What the ledger's check_data lets through: no floats, integers within the exact range, valid text.
valid_texts = texts.filter(is_utf8)
checked_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | valid_texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(valid_texts, inner, max_size=4),
    max_leaves=20,
)


def reference(value: Any) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)
    except Exception as exc:  # the reference's refusal is the expected answer
        return type(exc)


def ours(value: Any) -> bytes | type[Exception]:
    try:
        return canonical(value)
    except Exception as exc:
        return type(exc)


@settings(max_examples=1000)
@given(values)
def test_any_json_value_is_written_exactly_as_the_reference_writes_it(value: Any) -> None:
    assert ours(value) == reference(value)


@settings(max_examples=1000)
@given(checked_values)
def test_a_checked_value_is_written_exactly_as_the_reference_writes_it(value: Any) -> None:
    assert canonical_checked(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, False, None]},
        {"\ue000": 1, "\U0001f600": 2},  # UTF-16 order puts the astral key first
        {"k": "\x00\x08\x09\x0a\x0c\x0d\x1f\x7f\u2028\u2029"},
        {"n": 2**53 - 1, "m": -(2**53) + 1},
        {"n": 2**53},
        {"f": 1.0, "g": 1e21, "h": -0.0},
        {1: "not a string key"},
        {"s": "\ud800"},
        ("a", ("b",)),
    ],
    ids=["plain", "astral-keys", "control-chars", "int-edges", "int-beyond", "floats", "int-key", "lone-surrogate", "tuples"],
)
def test_edge_values_are_written_exactly_as_the_reference_writes_them(value: Any) -> None:
    assert ours(value) == reference(value)


def test_a_checked_value_nested_deeper_than_the_fast_writer_goes_is_still_written_exactly() -> None:
    deep: Any = "leaf"
    for _ in range(300):
        deep = [deep]
    assert canonical_checked(deep) == rfc8785.dumps(deep)
