"""Identifiers, country codes and times: what the gateway accepts as a path segment, key or
jurisdiction, and how it writes the time; and the quick constructor of frozen types."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.model import clock_text, is_country, is_identifier, isoformat, quick_init, system_clock


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


@dataclasses.dataclass(frozen=True, slots=True)
class _Plain:
    a: str
    b: int = 2
    c: tuple[str, ...] = ()


Quick = quick_init(dataclasses.make_dataclass("Quick", [("a", str), ("b", int, 2), ("c", tuple[str, ...], ())], frozen=True, slots=True))


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("x",), {}), (("x", 5), {}), (("x",), {"c": ("y",)}), ((), {"a": "x", "b": 7, "c": ()}), (("x", 5, ("z",)), {})],
)
def test_a_quick_init_type_is_built_with_the_same_fields_as_the_dataclass_would_build(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    assert dataclasses.astuple(Quick(*args, **kwargs)) == dataclasses.astuple(_Plain(*args, **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "kwargs"), [((), {}), (("x",), {"a": "y"}), (("x",), {"d": 1}), (("x", 1, (), 4), {})])
def test_a_quick_init_type_refuses_the_arguments_the_dataclass_would_refuse(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        _Plain(*args, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Quick(*args, **kwargs)


def test_a_quick_init_type_stays_frozen() -> None:
    value = Quick("x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.a = "y"  # type: ignore[misc]


def test_a_quick_init_type_keeps_equality_hash_and_replace() -> None:
    value = Quick("x", 3)
    assert value == Quick("x", 3) and hash(value) == hash(Quick("x", 3))
    assert dataclasses.replace(value, b=4) == Quick("x", 4)


@pytest.mark.parametrize(
    "cls",
    [
        dataclasses.make_dataclass("Mutable", [("a", str)], slots=True),
        dataclasses.make_dataclass("NoSlots", [("a", str)], frozen=True),
        dataclasses.make_dataclass("Factory", [("a", list, dataclasses.field(default_factory=list))], frozen=True, slots=True),
        dataclasses.make_dataclass("KwOnly", [("a", str)], frozen=True, slots=True, kw_only=True),
        dataclasses.make_dataclass("NotInInit", [("a", str), ("b", int, dataclasses.field(default=0, init=False))], frozen=True, slots=True),
        dataclasses.make_dataclass("InitVar", [("a", str), ("b", dataclasses.InitVar[int])], frozen=True, slots=True),
    ],
    ids=["not-frozen", "no-slots", "default-factory", "keyword-only", "not-in-init", "init-var"],
)
def test_quick_init_refuses_a_type_it_cannot_build_faithfully(cls: type) -> None:
    with pytest.raises(TypeError):
        quick_init(cls)


def test_a_quick_init_subclass_fills_the_slots_its_base_declares() -> None:
    base = dataclasses.make_dataclass("Base", [("a", str)], frozen=True, slots=True)
    child = quick_init(dataclasses.make_dataclass("Child", [("b", int, 1)], bases=(base,), frozen=True, slots=True))
    assert dataclasses.astuple(child("x", 2)) == ("x", 2)


def test_a_quick_init_type_may_name_a_field_self() -> None:
    cls = quick_init(dataclasses.make_dataclass("Selfish", [("self", str)], frozen=True, slots=True))
    assert cls(self="x").self == "x" and cls("y").self == "y"
