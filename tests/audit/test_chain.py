"""The hash chain: entries are canonical lines, and any tampering breaks it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.chain import (
    CHECKPOINT,
    GENESIS,
    MAX_INT,
    encode,
    entry_and_line,
    entry_hash,
    make_entry,
    verify_lines,
)
from gateway.canonical import canonical, sha256_hex
from gateway.model import isoformat

T0 = "2025-01-01T00:00:00Z"

# --- helpers -------------------------------------------------------------------------


def build(specs: list[tuple[str, str, dict[str, Any]]]) -> list[bytes]:
    """Ledger lines for ``(time, kind, data)`` specs, chained from genesis."""
    lines: list[bytes] = []
    prev = GENESIS
    for seq, (time, kind, data) in enumerate(specs, start=1):
        entry = make_entry(prev, seq, time, kind, data)
        lines.append(encode(entry))
        prev = entry["hash"]
    return lines


def simple(count: int) -> list[bytes]:
    return build([(T0, "record.read", {"n": n}) for n in range(count)])


def entry_of(line: bytes) -> dict[str, Any]:
    value = json.loads(line)
    assert isinstance(value, dict)
    return value


def rehashed(entry: dict[str, Any]) -> bytes:
    entry = dict(entry)
    entry["hash"] = entry_hash(entry)
    return encode(entry)


def head(lines: list[bytes]) -> tuple[int, str]:
    last = entry_of(lines[-1])
    return last["seq"], last["hash"]


# --- strategies ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_INT, MAX_INT) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
datas = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
kinds = st.text(min_size=1, max_size=20).filter(lambda kind: kind != CHECKPOINT)  # a checkpoint has its own shape
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(isoformat)
specs = st.lists(st.tuples(times, kinds, datas), min_size=1, max_size=8)
hexes = st.binary(min_size=1, max_size=8).map(lambda b: sha256_hex(b))


# --- entries -------------------------------------------------------------------------


def test_an_entry_carries_the_hash_of_its_content_without_the_hash() -> None:
    entry = make_entry(GENESIS, 1, T0, "record.read", {"subject": "s-1"})
    without = {k: v for k, v in entry.items() if k != "hash"}
    assert entry["hash"] == sha256_hex(canonical(without))


def test_an_entry_is_one_canonical_line() -> None:
    entry = make_entry(GENESIS, 1, T0, "record.read", {"b": [1, None], "a": "x\ny"})
    line = encode(entry)
    assert line == canonical(entry) + b"\n"
    assert line.count(b"\n") == 1


def test_the_first_entry_links_to_genesis() -> None:
    assert entry_of(simple(1)[0])["prev"] == GENESIS == "0" * 64


def test_each_entry_links_to_the_hash_of_the_one_before() -> None:
    first, second = (entry_of(line) for line in simple(2))
    assert second["prev"] == first["hash"]


def test_a_float_in_data_is_refused() -> None:
    with pytest.raises(ValueError, match="float"):
        make_entry(GENESIS, 1, T0, "k", {"nested": [{"ratio": 0.5}]})


def test_a_non_json_value_in_data_is_refused() -> None:
    with pytest.raises(ValueError):
        make_entry(GENESIS, 1, T0, "k", {"when": datetime(2025, 1, 1, tzinfo=UTC)})


def test_a_non_string_key_in_data_is_refused() -> None:
    with pytest.raises(ValueError, match="key"):
        make_entry(GENESIS, 1, T0, "k", {"outer": {1: "x"}})


def test_an_integer_beyond_the_exact_json_range_is_refused() -> None:
    with pytest.raises(ValueError, match="range"):
        make_entry(GENESIS, 1, T0, "k", {"n": 2**53})


def test_tuples_in_data_are_written_as_lists() -> None:
    assert make_entry(GENESIS, 1, T0, "k", {"t": (1, 2)})["data"] == {"t": [1, 2]}


def test_an_empty_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        make_entry(GENESIS, 1, T0, "", {})


def test_a_time_that_is_not_rfc_3339_is_refused() -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        make_entry(GENESIS, 1, "2025-01-01 00:00:00", "k", {})


def test_an_entry_does_not_share_its_data_with_the_caller() -> None:
    data: dict[str, Any] = {"ids": ["a"]}
    entry = make_entry(GENESIS, 1, T0, "k", data)
    data["ids"].append("b")
    assert entry["data"] == {"ids": ["a"]}


# --- verification ----------------------------------------------------------------------


def test_an_empty_ledger_verifies_with_genesis_as_its_head() -> None:
    report = verify_lines([])
    assert (report.ok, report.entries, report.last_seq, report.last_hash) == (True, 0, 0, GENESIS)


def test_a_chain_verifies_and_reports_its_last_entry() -> None:
    lines = simple(5)
    report = verify_lines(lines)
    assert report.ok and report.entries == 5
    assert (report.last_seq, report.last_hash) == head(lines)
    assert report.problem is None and report.broken_at is None and not report.torn_tail


def test_an_edited_entry_is_reported_with_its_line_and_the_valid_prefix_before_it() -> None:
    lines = simple(4)
    entry = entry_of(lines[2])
    entry["data"] = {"n": 99}
    lines[2] = encode(entry)
    report = verify_lines(lines)
    assert not report.ok
    assert report.problem == "entry 3: hash does not match its content"
    assert (report.broken_at, report.entries, report.last_seq) == (3, 2, 2)
    assert report.last_hash == entry_of(lines[1])["hash"]
    assert not report.torn_tail


def test_an_entry_in_another_json_encoding_is_not_canonical() -> None:
    lines = simple(2)
    lines[1] = json.dumps(entry_of(lines[1]), indent=None).encode() + b"\n"
    report = verify_lines(lines)
    assert report.problem == "entry 2: not in canonical form"


def test_an_entry_with_an_extra_key_is_broken_even_with_a_matching_hash() -> None:
    lines = simple(2)
    entry = entry_of(lines[1])
    entry["note"] = "added"
    lines[1] = rehashed(entry)
    assert "unexpected note" in (verify_lines(lines).problem or "")


def test_an_entry_with_a_float_in_its_data_is_broken_even_with_a_matching_hash() -> None:
    lines = simple(1)
    entry = entry_of(lines[0])
    entry["data"] = {"ratio": 0.5}
    lines[0] = rehashed(entry)
    report = verify_lines(lines)
    assert not report.ok and "float" in (report.problem or "")


def test_an_entry_whose_seq_skips_a_number_is_broken() -> None:
    first = make_entry(GENESIS, 1, T0, "k", {})
    third = make_entry(first["hash"], 3, T0, "k", {})
    report = verify_lines([encode(first), encode(third)])
    assert report.problem == "entry 2: seq is 3, expected 2"


def test_a_first_entry_that_does_not_start_from_genesis_is_broken() -> None:
    line = encode(make_entry("1" * 64, 1, T0, "k", {}))
    assert verify_lines([line]).problem == "entry 1: prev does not match genesis"


def test_a_last_line_without_its_newline_is_a_torn_tail() -> None:
    lines = simple(3)
    lines[2] = lines[2][:-1]
    report = verify_lines(lines)
    assert not report.ok and report.torn_tail
    assert (report.broken_at, report.entries, report.last_seq) == (3, 2, 2)


def test_a_last_line_cut_mid_entry_is_a_torn_tail() -> None:
    lines = simple(3)
    lines[2] = lines[2][:20]
    report = verify_lines(lines)
    assert report.torn_tail and report.broken_at == 3


def test_a_last_line_that_is_not_json_is_a_torn_tail() -> None:
    lines = [*simple(2), b"\x00\x00\x00\n"]
    report = verify_lines(lines)
    assert report.torn_tail and report.entries == 2


def test_a_line_that_is_not_json_before_the_last_is_broken_not_torn() -> None:
    lines = simple(3)
    lines[1] = b"garbage\n"
    report = verify_lines(lines)
    assert not report.ok and not report.torn_tail
    assert report.problem == "entry 2: not valid json"


def test_a_line_without_its_newline_before_the_last_is_broken_not_torn() -> None:
    lines = simple(3)
    lines[0] = lines[0][:-1]
    report = verify_lines(lines)
    assert not report.torn_tail and report.broken_at == 1


def test_a_blank_line_in_the_middle_is_broken() -> None:
    lines = simple(2)
    report = verify_lines([lines[0], b"\n", lines[1]])
    assert not report.ok and report.broken_at == 2


def test_cutting_entries_off_the_end_is_caught_against_a_checkpoint() -> None:
    lines = simple(5)
    checkpoint = head(lines)
    assert verify_lines(lines[:3]).ok  # the chain alone cannot tell
    report = verify_lines(lines[:3], checkpoint=checkpoint)
    assert not report.ok and report.problem == "ledger ends at entry 3, before checkpoint entry 5"


def test_a_checkpoint_behind_the_head_still_verifies_a_longer_ledger() -> None:
    lines = simple(5)
    checkpoint = head(lines[:3])
    assert verify_lines(lines, checkpoint=checkpoint).ok


def test_a_rewritten_history_is_caught_against_a_checkpoint() -> None:
    lines = simple(3)
    checkpoint = head(lines)
    rewritten = build([(T0, "record.read", {"n": n + 1}) for n in range(3)])
    report = verify_lines(rewritten, checkpoint=checkpoint)
    assert report.problem == "entry 3: hash does not match the checkpoint"


# --- properties ----------------------------------------------------------------------


@given(times, kinds, datas)
def test_the_spliced_line_of_an_entry_is_its_canonical_encoding(time: str, kind: str, data: dict[str, Any]) -> None:
    entry, line = entry_and_line("a" * 64, 7, time, kind, data)
    assert line == encode(entry) and entry["hash"] == entry_hash(entry)


@given(specs)
def test_a_ledger_of_random_entries_always_verifies(chain_specs: list[tuple[str, str, dict[str, Any]]]) -> None:
    lines = build(chain_specs)
    report = verify_lines(lines)
    assert report.ok and report.entries == len(lines)
    assert (report.last_seq, report.last_hash) == head(lines)


FIELD_EDITS = {
    "seq": st.integers(1, 1000),
    "time": times,
    "kind": kinds,
    "data": datas,
    "prev": hexes,
    "hash": hexes,
}


@given(specs, st.data())
def test_editing_any_field_of_any_entry_is_detected(chain_specs: list[tuple[str, str, dict[str, Any]]], data: st.DataObject) -> None:
    lines = build(chain_specs)
    index = data.draw(st.integers(0, len(lines) - 1))
    field = data.draw(st.sampled_from(sorted(FIELD_EDITS)))
    entry = entry_of(lines[index])
    entry[field] = data.draw(FIELD_EDITS[field].filter(lambda v: v != entry[field]))
    lines[index] = encode(entry)
    report = verify_lines(lines)
    assert not report.ok and report.broken_at == index + 1


@given(specs.filter(lambda s: len(s) >= 2), st.data())
def test_editing_an_entry_and_fixing_its_hash_is_detected_at_the_next_entry(
    chain_specs: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    lines = build(chain_specs)
    index = data.draw(st.integers(0, len(lines) - 2))
    entry = entry_of(lines[index])
    entry["data"] = data.draw(datas.filter(lambda v: v != entry["data"]))
    lines[index] = rehashed(entry)
    report = verify_lines(lines)
    assert not report.ok and report.broken_at == index + 2


@given(specs, st.data())
def test_deleting_any_entry_is_detected_against_a_checkpoint_of_the_head(
    chain_specs: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    lines = build(chain_specs)
    checkpoint = head(lines)
    del lines[data.draw(st.integers(0, len(lines) - 1))]
    assert not verify_lines(lines, checkpoint=checkpoint).ok


@given(specs.filter(lambda s: len(s) >= 2), st.data())
def test_deleting_any_entry_but_the_last_is_detected_by_the_chain_alone(
    chain_specs: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    lines = build(chain_specs)
    index = data.draw(st.integers(0, len(lines) - 2))
    del lines[index]
    report = verify_lines(lines)
    assert not report.ok and report.broken_at == index + 1


@given(specs, st.data())
def test_inserting_an_entry_before_the_end_is_detected(chain_specs: list[tuple[str, str, dict[str, Any]]], data: st.DataObject) -> None:
    lines = build(chain_specs)
    index = data.draw(st.integers(0, len(lines) - 1))
    # the most plausible forgery: a well-formed entry claiming the slot it takes
    prev = entry_of(lines[index - 1])["hash"] if index else GENESIS
    forged = make_entry(prev, index + 1, data.draw(times), data.draw(kinds), data.draw(datas))
    lines.insert(index, encode(forged))
    report = verify_lines(lines)
    assert not report.ok and report.broken_at == index + 2


@given(specs, st.data())
def test_duplicating_any_entry_is_detected(chain_specs: list[tuple[str, str, dict[str, Any]]], data: st.DataObject) -> None:
    lines = build(chain_specs)
    index = data.draw(st.integers(0, len(lines) - 1))
    lines.insert(index + 1, lines[index])
    report = verify_lines(lines)
    assert not report.ok and report.broken_at == index + 2


@given(specs.filter(lambda s: len(s) >= 2), st.data())
def test_swapping_any_two_entries_is_detected(chain_specs: list[tuple[str, str, dict[str, Any]]], data: st.DataObject) -> None:
    lines = build(chain_specs)
    i = data.draw(st.integers(0, len(lines) - 2))
    j = data.draw(st.integers(i + 1, len(lines) - 1))
    lines[i], lines[j] = lines[j], lines[i]
    report = verify_lines(lines)
    assert not report.ok and report.broken_at == i + 1
