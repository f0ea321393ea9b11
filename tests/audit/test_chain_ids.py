"""Chain ids: each writer's entries name its chain, hashed like every other field; old ledgers are the default chain."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.audit.chain import CHAIN, DEFAULT_CHAIN, GENESIS, encode, entry_and_line, entry_hash, make_entry, merge_chains, verify_lines
from gateway.canonical import canonical

T0 = "2025-01-01T00:00:00Z"


def chain_lines(count: int, chain: str = DEFAULT_CHAIN, *, times: list[str] | None = None) -> list[bytes]:
    lines, prev = [], GENESIS
    for seq in range(1, count + 1):
        entry = make_entry(prev, seq, times[seq - 1] if times else T0, "record.read", {"n": seq}, chain)
        lines.append(encode(entry))
        prev = entry["hash"]
    return lines


def test_an_entry_of_a_named_chain_carries_its_chain_id() -> None:
    entry = make_entry(GENESIS, 1, T0, "record.read", {}, "gateway-7d9f-x2")
    assert entry[CHAIN] == "gateway-7d9f-x2"


def test_the_chain_id_is_part_of_the_entrys_hash() -> None:
    entry = make_entry(GENESIS, 1, T0, "record.read", {}, "replica-a")
    assert entry_hash({**entry, CHAIN: "replica-b"}) != entry["hash"]


def test_an_entry_moved_to_another_chain_by_editing_its_chain_id_does_not_verify() -> None:
    lines = chain_lines(3, "replica-a")
    edited = json.loads(lines[1]) | {CHAIN: "replica-b"}
    lines[1] = canonical(edited) + b"\n"
    report = verify_lines(lines)
    assert not report.ok and report.broken_at == 2 and "hash does not match" in str(report.problem)


def test_an_entry_of_another_chain_rehashed_into_a_chain_is_refused_naming_both_chains() -> None:
    lines = chain_lines(3, "replica-a")
    stranger = make_entry(json.loads(lines[1])["hash"], 3, T0, "record.read", {"n": 3}, "replica-b")
    lines[2] = encode(stranger)
    report = verify_lines(lines)
    assert not report.ok and report.broken_at == 3
    assert report.problem == "entry 3: belongs to chain `replica-b`, not `replica-a`"


def test_a_chain_is_refused_when_it_is_not_the_chain_asked_for() -> None:
    report = verify_lines(chain_lines(2, "replica-a"), chain="replica-b")
    assert not report.ok and report.broken_at == 1


def test_a_verified_chain_reports_its_chain_id() -> None:
    report = verify_lines(chain_lines(2, "replica-a"))
    assert report.ok and report.chain == "replica-a"


def test_a_ledger_written_before_chain_ids_verifies_as_the_default_chain() -> None:
    # entries as the gateway wrote them before chain ids: the six fields and nothing else
    lines, prev = [], GENESIS
    for seq in (1, 2):
        entry = {"data": {"n": seq}, "kind": "record.read", "prev": prev, "seq": seq, "time": T0}
        entry["hash"] = entry_hash(entry)
        lines.append(canonical(entry) + b"\n")
        prev = entry["hash"]
    report = verify_lines(lines, chain=DEFAULT_CHAIN)
    assert report.ok and report.entries == 2 and report.chain == DEFAULT_CHAIN


def test_the_default_chain_writes_entries_without_a_chain_field_byte_for_byte_as_before() -> None:
    entry, line = entry_and_line(GENESIS, 1, T0, "record.read", {"n": 1})
    assert CHAIN not in entry
    assert line == b'{"data":{"n":1},"hash":"%s","kind":"record.read","prev":"%s","seq":1,"time":"%s"}\n' % (
        entry["hash"].encode(),
        GENESIS.encode(),
        T0.encode(),
    )


def test_an_entry_naming_the_default_chain_explicitly_is_not_in_canonical_form_for_the_ledger() -> None:
    entry = make_entry(GENESIS, 1, T0, "record.read", {})
    named = entry | {CHAIN: DEFAULT_CHAIN}
    named["hash"] = entry_hash(named)
    report = verify_lines([encode(named)])
    assert not report.ok and "default chain" in str(report.problem)


@pytest.mark.parametrize("chain", ["", "-leading-dash", "a/b", "..", "é", "a" * 101, "with space"])
def test_a_chain_id_that_could_not_name_a_file_or_a_bucket_folder_is_refused(chain: str) -> None:
    with pytest.raises(ValueError, match="chain id"):
        make_entry(GENESIS, 1, T0, "record.read", {}, chain)


def test_the_line_of_a_named_chain_is_its_canonical_form() -> None:
    entry, line = entry_and_line(GENESIS, 1, T0, "record.read", {"n": 1}, "gw-0")
    assert line == canonical(entry) + b"\n"


def entries_of(lines: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def test_several_chains_merge_into_one_ledger_by_time_each_in_its_own_order() -> None:
    a = entries_of(chain_lines(3, "a", times=["2025-01-01T00:00:01Z", "2025-01-01T00:00:03Z", "2025-01-01T00:00:05Z"]))
    b = entries_of(chain_lines(2, "b", times=["2025-01-01T00:00:02Z", "2025-01-01T00:00:04.5Z"]))
    merged = merge_chains([a, b])
    assert [(e.get(CHAIN), e["seq"]) for e in merged] == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3)]
