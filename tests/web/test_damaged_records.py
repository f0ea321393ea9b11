"""A damaged record harms only itself (file stores, through the HTTP API and the CLI).

A record whose stored header an operator's disk (or an operator) corrupted, or
whose body was altered so it no longer matches its residency tag, is refused as
a residency violation on a read, skipped (and counted) by a list, refused with
`record-integrity` by an order while the subject's other records are decided
as usual, and left out of a package, which says so and still verifies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.legal.decision_cases import Case
from tests.orders_support import case_named, download_package, item_for, ledger_entries, seed_case, sign_case, submit, verify_package_bytes
from tests.support import Env, run_cli

WARRANT = "scenario 1: US court warrant for a US citizen's content stored in the US"
READER = ("crm", "us-east-1", "crm")
DAMAGED = "rec-content-2"


def _object_file(env: Env, subject: str, key: str) -> Path:
    return env.data_dir / "stores" / "us-east-1" / "objects" / "subjects" / subject / "records" / key


def corrupt_header(env: Env, subject: str, key: str) -> None:
    """Overwrite the first byte of the record's metadata line on disk (the JSON no longer parses)."""
    path = _object_file(env, subject, key)
    data = bytearray(path.read_bytes())
    start = data.index(b"\n") + 1
    assert data[start : start + 1] == b"{"
    data[start] = ord("#")
    path.write_bytes(bytes(data))


def corrupt_magic(env: Env, subject: str, key: str) -> None:
    """Overwrite the first byte of the record's file on disk: the store can no longer find where its body starts."""
    path = _object_file(env, subject, key)
    path.write_bytes(b"X" + path.read_bytes()[1:])


def alter_body(env: Env, subject: str, key: str, body: bytes) -> None:
    """Replace the record's body on disk, keeping its header (and so its residency tag) as it was."""
    path = _object_file(env, subject, key)
    data = path.read_bytes()
    end_of_header = data.index(b"\n", data.index(b"\n") + 1) + 1
    path.write_bytes(data[:end_of_header] + body)


async def three_records(client: TestClient, env: Env) -> Case:
    """The warrant case's subject with three content records: rec-content, rec-content-2, rec-content-3."""
    case = case_named(WARRANT)
    env.clock.now = case.at
    await seed_case(client, env, case)
    for key in ("rec-content-2", "rec-content-3"):
        response = await client.put(
            f"/v1/subjects/{case.subject.id}/records/{key}", params={"category": "content"}, data=f"{key} body".encode(), headers=env.service(*READER)
        )
        assert response.status == 201, await response.text()
    return case


async def _violations_counted(client: TestClient, reason: str) -> float:
    text = await (await client.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_residency_violations_total" and sample.labels == {"region": "us-east-1", "reason": reason}:
                return sample.value
    return 0.0


def _violations_ledgered(env: Env, key: str) -> list[dict[str, Any]]:
    return [e["data"] for e in ledger_entries(env, "residency.violation") if e["data"].get("key") == key]


async def _decided(client: TestClient, env: Env, case: Case) -> dict[str, Any]:
    status, document = await submit(client, env, sign_case(env, case))
    assert status == 201, document
    return document


def _refused(document: dict[str, Any]) -> list[tuple[str, str | None, str, str]]:
    """(key, category, outcome, reason) of every damaged record the document names."""
    return [
        (damaged["key"], item["category"], item["outcome"], item["reasons"][0]["code"])
        for item in document["items"]
        for damaged in item.get("damaged_records", [])
    ]


def _disclosed_keys(document: dict[str, Any], subject: str) -> list[str]:
    return [r["key"] for r in item_for(document, subject, "content")["records"]]


# --- a corrupt header ------------------------------------------------------------------


async def test_reading_a_record_whose_stored_header_is_corrupt_is_a_451_residency_violation(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    corrupt_header(env, case.subject.id, DAMAGED)
    response = await client.get(f"/v1/subjects/{case.subject.id}/records/{DAMAGED}", headers=env.service(*READER))
    body = await response.json()
    assert (response.status, body["code"], body["reasons"][0]["code"]) == (451, "residency-violation", "record-corrupt"), body


async def test_a_read_of_a_record_with_a_corrupt_header_is_ledgered_and_counted(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    corrupt_header(env, case.subject.id, DAMAGED)
    await client.get(f"/v1/subjects/{case.subject.id}/records/{DAMAGED}", headers=env.service(*READER))
    assert [v["reason"] for v in _violations_ledgered(env, DAMAGED)] == ["record-corrupt"]
    assert await _violations_counted(client, "record-corrupt") == 1


async def test_a_list_skips_a_record_with_a_corrupt_header_and_says_how_many_it_skipped(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    corrupt_header(env, case.subject.id, DAMAGED)
    response = await client.get(f"/v1/subjects/{case.subject.id}/records", headers=env.service(*READER))
    body = await response.json()
    assert response.status == 200, body
    assert ([r["key"] for r in body["records"]], body["skipped"]) == (["rec-content", "rec-content-3"], 1)


async def test_each_record_a_list_skips_is_a_ledgered_and_counted_violation(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    corrupt_header(env, case.subject.id, DAMAGED)
    await client.get(f"/v1/subjects/{case.subject.id}/records", headers=env.service(*READER))
    assert [v["reason"] for v in _violations_ledgered(env, DAMAGED)] == ["record-corrupt"]
    assert await _violations_counted(client, "record-corrupt") == 1


async def test_a_list_with_nothing_damaged_skips_nothing(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    body = await (await client.get(f"/v1/subjects/{case.subject.id}/records", headers=env.service(*READER))).json()
    assert (len(body["records"]), body["skipped"]) == (3, 0)


async def test_an_order_refuses_a_record_with_a_corrupt_header_for_record_integrity_and_discloses_the_rest(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    corrupt_header(env, case.subject.id, DAMAGED)
    document = await _decided(client, env, case)
    assert item_for(document, case.subject.id, "content")["outcome"] == "disclose"
    assert _disclosed_keys(document, case.subject.id) == ["rec-content", "rec-content-3"]
    assert _refused(document) == [(DAMAGED, None, "refuse", "record-integrity")]


async def test_an_orders_integrity_failure_is_ledgered_and_counted(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    corrupt_header(env, case.subject.id, DAMAGED)
    await _decided(client, env, case)
    assert [(v["reason"], v["order"]) for v in _violations_ledgered(env, DAMAGED)] == [("record-corrupt", case.order.id)]
    decided = ledger_entries(env, "order.decided")[-1]["data"]
    assert ("refuse", "record-integrity") in [(i["outcome"], i["reason"]) for i in decided["items"]]
    assert await _violations_counted(client, "record-corrupt") == 1


async def test_explaining_an_order_naming_a_record_with_a_corrupt_header_shows_it_refused(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    corrupt_header(env, case.subject.id, DAMAGED)
    response = await client.post("/v1/explain", json={"order": sign_case(env, case)}, headers=env.person("legal", "counsel"))
    document = await response.json()
    assert response.status == 200, document
    assert _refused(document) == [(DAMAGED, None, "refuse", "record-integrity")]
    assert any(DAMAGED in line and "record-integrity" in line for line in document["trace"])


async def test_the_package_of_an_order_with_a_corrupt_record_is_whole_verifies_and_leaves_it_out(client: TestClient, env: Env, tmp_path: Path) -> None:
    case = await three_records(client, env)
    corrupt_header(env, case.subject.id, DAMAGED)
    await _decided(client, env, case)
    status, data, complete = await download_package(client, env, case.order.id)
    assert (status, complete) == (200, True)
    report = verify_package_bytes(env, data, tmp_path)
    assert (report.ok, report.records, report.problems) == (True, 2, [])
    assert DAMAGED.encode() not in data


# --- a header tampered with in the store, seen by the order's bulk header read ----------------


def copy_header(env: Env, source: tuple[str, str], subject: str, key: str) -> None:
    """Put the header line (residency tag and seal included) of ``source``'s (subject, key) file on the record's file,
    keeping its body: a valid tag and seal, made for another record."""

    def header_and_body(path: Path) -> tuple[bytes, bytes]:
        data = path.read_bytes()
        end_of_header = data.index(b"\n", data.index(b"\n") + 1) + 1
        return data[:end_of_header], data[end_of_header:]

    header, _ = header_and_body(_object_file(env, *source))
    _, body = header_and_body(_object_file(env, subject, key))
    _object_file(env, subject, key).write_bytes(header + body)


def alter_tag(env: Env, subject: str, key: str) -> None:
    """Change one character of the signature of the record's stored residency tag on disk, keeping its seal and body."""
    path = _object_file(env, subject, key)
    magic, line, body = path.read_bytes().split(b"\n", 2)
    header = json.loads(line)
    tag = header["metadata"]["residency-tag"]
    at = tag.index(".") + 5
    header["metadata"]["residency-tag"] = tag[:at] + ("A" if tag[at] != "A" else "B") + tag[at + 1 :]
    path.write_bytes(b"\n".join([magic, json.dumps(header).encode(), body]))


def _violations(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, violation) of every damaged record the document names."""
    return [(damaged["key"], damaged["violation"]) for item in document["items"] for damaged in item.get("damaged_records", [])]


async def test_an_order_refuses_a_record_whose_stored_header_is_another_records_and_discloses_the_rest(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    copy_header(env, (case.subject.id, "rec-content-3"), case.subject.id, DAMAGED)
    document = await _decided(client, env, case)
    assert _disclosed_keys(document, case.subject.id) == ["rec-content", "rec-content-3"]
    assert _violations(document) == [(DAMAGED, "tag-binding-mismatch")]


async def test_an_order_refuses_a_record_whose_stored_header_is_another_subjects_record_of_the_same_name(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    writer = env.service(*READER)
    assert (await client.put("/v1/subjects/other", json={"home_region": "us-east-1", "residence": "US"}, headers=writer)).status in (200, 201)
    response = await client.put(f"/v1/subjects/other/records/{DAMAGED}", params={"category": "content"}, data=b"other's", headers=writer)
    assert response.status == 201, await response.text()
    copy_header(env, ("other", DAMAGED), case.subject.id, DAMAGED)
    document = await _decided(client, env, case)
    assert _violations(document) == [(DAMAGED, "tag-binding-mismatch")]


async def test_an_order_refuses_a_record_whose_stored_tag_signature_was_altered_under_its_seal(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    alter_tag(env, case.subject.id, DAMAGED)
    document = await _decided(client, env, case)
    assert _violations(document) == [(DAMAGED, "tag-signature-invalid")]


async def test_an_order_refuses_a_record_whose_file_lost_its_magic_and_discloses_the_rest(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    corrupt_magic(env, case.subject.id, DAMAGED)
    document = await _decided(client, env, case)
    assert _disclosed_keys(document, case.subject.id) == ["rec-content", "rec-content-3"]
    assert _violations(document) == [(DAMAGED, "record-corrupt")]


# --- an altered body ---------------------------------------------------------------------


async def test_a_list_skips_a_record_whose_body_no_longer_matches_its_tag(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    alter_body(env, case.subject.id, DAMAGED, b"rewritten on disk, longer than before")
    body = await (await client.get(f"/v1/subjects/{case.subject.id}/records", headers=env.service(*READER))).json()
    assert ([r["key"] for r in body["records"]], body["skipped"]) == (["rec-content", "rec-content-3"], 1)
    assert [v["reason"] for v in _violations_ledgered(env, DAMAGED)] == ["tag-content-mismatch"]


async def test_an_order_refuses_a_record_whose_body_no_longer_matches_its_tag_and_discloses_the_rest(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    alter_body(env, case.subject.id, DAMAGED, b"rewritten on disk, longer than before")
    document = await _decided(client, env, case)
    assert _disclosed_keys(document, case.subject.id) == ["rec-content", "rec-content-3"]
    assert _refused(document) == [(DAMAGED, "content", "refuse", "record-integrity")]


async def test_the_package_of_an_order_with_an_altered_record_is_whole_and_verifies_with_the_cli(client: TestClient, env: Env, tmp_path: Path) -> None:
    case = await three_records(client, env)
    alter_body(env, case.subject.id, DAMAGED, b"rewritten on disk, longer than before")
    await _decided(client, env, case)
    status, data, complete = await download_package(client, env, case.order.id)
    assert (status, complete) == (200, True)
    (tmp_path / "package.tar").write_bytes(data)
    assert run_cli(tmp_path, "package", "verify", str(tmp_path / "package.tar")) == 0
    assert b"rewritten on disk" not in data


async def test_a_record_altered_after_the_decision_is_withheld_from_the_package_which_says_so(
    client: TestClient, env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = await three_records(client, env)
    document = await _decided(client, env, case)
    assert _disclosed_keys(document, case.subject.id) == ["rec-content", "rec-content-2", "rec-content-3"]
    alter_body(env, case.subject.id, DAMAGED, b"REC-CONTENT-2 BODY")  # the same length: only its hash tells
    status, data, complete = await download_package(client, env, case.order.id)
    assert (status, complete) == (200, True)
    report = verify_package_bytes(env, data, tmp_path)
    assert (report.ok, report.records, report.problems) == (True, 2, [])
    assert report.withheld == [{"path": f"records/{case.subject.id}/us-east-1/{DAMAGED}", "reason": "record-integrity", "detail": "record-changed"}]
    assert b"REC-CONTENT-2" not in data
    (tmp_path / "package.tar").write_bytes(data)
    assert run_cli(tmp_path, "package", "verify", str(tmp_path / "package.tar")) == 0
    assert f"withheld: records/{case.subject.id}/us-east-1/{DAMAGED} (record-integrity: record-changed)" in capsys.readouterr().out


async def test_a_record_that_became_unreadable_after_the_decision_is_withheld_and_ledgered(client: TestClient, env: Env, tmp_path: Path) -> None:
    case = await three_records(client, env)
    await _decided(client, env, case)
    corrupt_magic(env, case.subject.id, DAMAGED)
    status, data, complete = await download_package(client, env, case.order.id)
    assert (status, complete) == (200, True)
    report = verify_package_bytes(env, data, tmp_path)
    assert (report.ok, [w["detail"] for w in report.withheld]) == (True, ["record-corrupt"])
    withheld = [e["data"] for e in ledger_entries(env, "package.withheld")]
    assert [(w["key"], w["reason"], w["detail"]) for w in withheld] == [(DAMAGED, "record-integrity", "record-corrupt")]


async def test_a_package_announces_its_exact_length_when_a_record_is_withheld(client: TestClient, env: Env) -> None:
    case = await three_records(client, env)
    await _decided(client, env, case)
    alter_body(env, case.subject.id, DAMAGED, b"REC-CONTENT-2 BODY")
    response = await client.get(f"/v1/orders/{case.order.id}/package", headers=env.person("intake", "portal"))
    data = await response.read()
    assert response.headers["Content-Length"] == str(len(data))


# --- support access ------------------------------------------------------------------


async def test_a_support_read_of_a_record_with_a_corrupt_header_is_a_451_residency_violation(client: TestClient, env: Env) -> None:
    from tests.web.test_support_access import _customer, _lawyer, _read, _setup

    case = await _setup(client, env)
    assert (await _customer(client, env, case), await _lawyer(client, env, case)) == (201, 201)
    corrupt_header(env, "alice", "mail-1")
    response = await _read(client, env, case)
    body = await response.json()
    assert (response.status, body["code"], body["reasons"][0]["code"]) == (451, "residency-violation", "record-corrupt"), body
    assert [v["reason"] for v in _violations_ledgered(env, "mail-1")] == ["record-corrupt"]
