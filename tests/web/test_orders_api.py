"""The order API end to end: verification, idempotency, holds, explain, packages, reading.

Every test runs a full app on local file stores with a frozen clock; orders are
signed with the demo authorities' keys, exactly as an authority would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.canonical import b64url, canonical
from gateway.config import load_config
from gateway.keys import resolve
from gateway.legal.decision_cases import Case
from gateway.legal.verify import order_fingerprint
from gateway.model import parse_time
from gateway.services.records import record_key
from gateway.web.state import STATE_KEY
from tests.orders_support import (
    case_named,
    claims_of,
    download_package,
    item_for,
    ledger_entries,
    seed_case,
    sign_case,
    submit,
    tree_digest,
    verify_package_bytes,
)
from tests.support import Env

PRESERVATION = "preservation: a US preservation request for data stored in the EU is preserved for 90 days"
EPOC_HOLD = "epoc: traffic data, offence in France but the subject lives in Germany, is held 10 days while Ireland is notified"
WARRANT = "scenario 1: US court warrant for a US citizen's content stored in the US"
EXPIRED_WARRANT = "scenario 7: US warrant past its execute-by date"
EU_WRITER = ("crm", "eu-west-1", "crm")  # a service in the EU may erase EU-stored records


def _at(text: str) -> datetime:
    return parse_time(text)


async def _start(client: TestClient, env: Env, name: str) -> Case:
    """Set the clock to the case's time and register its subject and record."""
    case = case_named(name)
    env.clock.now = case.at
    await seed_case(client, env, case)
    return case


async def _submitted(client: TestClient, env: Env, name: str) -> tuple[Case, dict[str, Any]]:
    case = await _start(client, env, name)
    status, document = await submit(client, env, sign_case(env, case))
    assert status == 201, document
    return case, document


def _record_url(case: Case) -> str:
    return f"/v1/subjects/{case.subject.id}/records/rec-{case.category}"


def _runtime(client: TestClient):
    return client.app[STATE_KEY].rt


def _authority_pem(env: Env, authority: str) -> bytes:
    config = load_config(env.settings.config_path)
    return resolve(env.data_dir, config.legal.authorities[authority].public_key).read_bytes()


def _hs256_with_public_pem(env: Env, case: Case) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the authority's public key PEM."""
    kid = case.order.served_by
    signing_input = f"{b64url(canonical({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'}))}.{b64url(canonical(claims_of(case)))}"
    mac = hmac.new(_authority_pem(env, kid), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _forgery(env: Env, case: Case, kind: str) -> str:
    if kind == "hs256-public-pem":
        return _hs256_with_public_pem(env, case)
    spec = {"forged": "invalid", "alg-none": "missing", "unknown-kid": "unregistered"}[kind]
    return sign_case(env, dataclasses.replace(case, order=dataclasses.replace(case.order, signature=spec)))


# --- 1. verification, replays and resubmissions ------------------------------------------


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("forged", "bad-signature"),
        ("alg-none", "bad-signature"),
        ("hs256-public-pem", "bad-signature"),
        ("unknown-kid", "unverified-authority"),
    ],
)
async def test_an_order_that_fails_verification_is_refused_with_its_code_and_recorded(client: TestClient, env: Env, kind: str, code: str) -> None:
    case = await _start(client, env, WARRANT)
    token = _forgery(env, case, kind)
    status, body = await submit(client, env, token)
    assert (status, body["code"], body["outcome"]) == (422, code, "refuse")
    rejected = ledger_entries(env, "order.rejected")
    assert [(e["data"]["reason"], e["data"]["fingerprint"]) for e in rejected] == [(code, order_fingerprint(token))]
    assert ledger_entries(env, "order.received") == [] and ledger_entries(env, "order.decided") == []


async def test_an_expired_order_is_refused_as_expired_and_recorded(client: TestClient, env: Env) -> None:
    case = await _start(client, env, EXPIRED_WARRANT)
    token = sign_case(env, case)
    status, body = await submit(client, env, token)
    assert (status, body["code"], body["outcome"]) == (422, "expired", "refuse")
    rejected = ledger_entries(env, "order.rejected")
    assert [(e["data"]["reason"], e["data"]["fingerprint"]) for e in rejected] == [("expired", order_fingerprint(token))]


async def test_a_used_order_id_with_a_different_body_is_refused_as_replayed_and_recorded(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, WARRANT)
    claims = {**claims_of(case), "case_ref": "another case"}  # same jti, different body
    status, body = await submit(client, env, sign_case(env, case, claims))
    assert (status, body["code"]) == (409, "replayed")
    assert [e["data"]["reason"] for e in ledger_entries(env, "order.rejected")] == ["replayed"]
    assert len(ledger_entries(env, "order.decided")) == 1


async def test_an_identical_resubmission_returns_the_same_decision_document(client: TestClient, env: Env) -> None:
    case = await _start(client, env, PRESERVATION)
    token = sign_case(env, case)
    first_status, first = await submit(client, env, token)
    again_status, again = await submit(client, env, token)
    assert (first_status, again_status) == (201, 200)
    assert again == first


async def test_an_identical_resubmission_records_no_second_decision_and_places_no_second_hold(client: TestClient, env: Env) -> None:
    case = await _start(client, env, PRESERVATION)
    token = sign_case(env, case)
    await submit(client, env, token)
    await submit(client, env, token)
    assert len(ledger_entries(env, "order.decided")) == 1
    assert len(ledger_entries(env, "hold.placed")) == 1
    control = _runtime(client).control
    books = [json.loads((await control.get(k)).body) for k in await control.list("holds/")]
    assert [list(b["holds"]) for b in books] == [["us-fbi/order-1"]]


# --- 2. preservation holds on the file store ---------------------------------------------


async def test_a_preservation_order_places_a_legal_hold_on_the_subjects_records(client: TestClient, env: Env) -> None:
    case, document = await _submitted(client, env, PRESERVATION)
    item = item_for(document, case.subject.id, "content")
    assert (item["outcome"], item["state"], _at(item["obligations"]["until"]).date().isoformat()) == ("preserve", "preserving", "2026-12-30")
    info = await _runtime(client).stores["eu-west-1"].head(record_key(case.subject.id, "rec-content"))
    assert info.legal_hold


async def test_a_preserved_record_cannot_be_overwritten_through_the_gateway(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, PRESERVATION)
    response = await client.put(_record_url(case), params={"category": "content"}, data=b"rewritten", headers=env.service(*EU_WRITER))
    assert (response.status, (await response.json())["code"]) == (409, "legal-hold")
    stored = await _runtime(client).stores["eu-west-1"].get(record_key(case.subject.id, "rec-content"))
    assert stored.body == f"content of {case.subject.id}".encode()


async def test_a_preserved_record_cannot_be_deleted_through_the_gateway(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, PRESERVATION)
    response = await client.delete(_record_url(case), headers=env.service(*EU_WRITER))
    assert (response.status, (await response.json())["code"]) == (409, "legal-hold")


async def test_a_sweep_before_the_preservation_expires_releases_nothing(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, PRESERVATION)
    env.clock.now = _at("2026-12-29T23:59:59Z")
    assert await _runtime(client).orders.sweep() == 0
    response = await client.delete(_record_url(case), headers=env.service(*EU_WRITER))
    assert response.status == 409


async def test_the_preservation_hold_lifts_at_expiry_and_the_record_can_then_be_deleted(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, PRESERVATION)
    env.clock.now = _at("2026-12-30T00:00:01Z")
    assert await _runtime(client).orders.sweep() == 1
    assert [e["data"]["key"] for e in ledger_entries(env, "hold.released")] == ["rec-content"]
    response = await client.delete(_record_url(case), headers=env.service(*EU_WRITER))
    assert response.status == 204
    response = await client.get(f"/v1/orders/{case.order.id}", headers=env.person("legal", "counsel"))
    assert item_for(await response.json(), case.subject.id, "content")["state"] == "expired"


async def _renew(client: TestClient, env: Env, case: Case, jti: str, renews: str, at: str) -> tuple[int, dict[str, Any]]:
    env.clock.now = _at(at)
    claims = {**claims_of(case), "jti": jti, "renews": renews, "iat": int(env.clock.now.timestamp())}
    claims["exp"] = claims["iat"] + 30 * 86400
    return await submit(client, env, sign_case(env, case, claims))


async def test_a_renewal_extends_the_preservation_once_by_its_extension_period(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, PRESERVATION)
    status, renewal = await _renew(client, env, case, "order-2", "order-1", "2026-12-20T00:00:00Z")
    assert status == 201, renewal
    item = item_for(renewal, case.subject.id, "content")
    assert (item["outcome"], item["reasons"][0]["code"]) == ("preserve", "preservation-extended")
    assert (_at(item["obligations"]["until"]), item["obligations"]["extensions"]) == (_at("2027-03-30T00:00:00Z"), 1)
    first = await (await client.get("/v1/orders/order-1", headers=env.person("legal", "counsel"))).json()
    assert (first["extensions"], _at(first["extended_until"])) == (1, _at("2027-03-30T00:00:00Z"))


async def test_a_renewed_preservation_reads_as_preserving_until_the_extended_date(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, PRESERVATION)
    await _renew(client, env, case, "order-2", "order-1", "2026-12-20T00:00:00Z")
    env.clock.now = _at("2027-01-15T00:00:00Z")
    first = await (await client.get("/v1/orders/order-1", headers=env.person("legal", "counsel"))).json()
    assert item_for(first, case.subject.id, "content")["state"] == "preserving"
    env.clock.now = _at("2027-03-30T00:00:01Z")
    first = await (await client.get("/v1/orders/order-1", headers=env.person("legal", "counsel"))).json()
    assert item_for(first, case.subject.id, "content")["state"] == "expired"


async def test_a_second_renewal_of_the_same_preservation_is_refused(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, PRESERVATION)
    await _renew(client, env, case, "order-2", "order-1", "2026-12-20T00:00:00Z")
    status, again = await _renew(client, env, case, "order-3", "order-1", "2027-03-01T00:00:00Z")
    assert status == 201, again
    item = item_for(again, case.subject.id, "content")
    assert (item["outcome"], item["reasons"][0]["code"]) == ("refuse", "extensions-exhausted")


async def test_renewing_the_renewal_does_not_extend_the_preservation_a_second_time(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, PRESERVATION)
    await _renew(client, env, case, "order-2", "order-1", "2026-12-20T00:00:00Z")
    status, again = await _renew(client, env, case, "order-3", "order-2", "2027-03-01T00:00:00Z")
    assert status == 201, again
    item = item_for(again, case.subject.id, "content")
    assert (item["outcome"], item["reasons"][0]["code"]) == ("refuse", "extensions-exhausted")


async def test_a_renewal_counts_against_the_preservation_it_renews_when_another_authority_used_the_same_id(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, PRESERVATION)  # us-fbi's order-1
    doj = dataclasses.replace(case, order=dataclasses.replace(case.order, issuer="us-doj", served_by="us-doj"))
    status, _ = await submit(client, env, sign_case(env, doj))  # us-doj's own order-1, for the same subject
    assert status == 201
    await _renew(client, env, case, "order-2", "order-1", "2026-12-20T00:00:00Z")
    status, again = await _renew(client, env, case, "order-3", "order-1", "2027-03-01T00:00:00Z")
    assert status == 201, again
    item = item_for(again, case.subject.id, "content")
    assert (item["outcome"], item["reasons"][0]["code"]) == ("refuse", "extensions-exhausted")


async def test_a_renewed_preservation_keeps_the_record_held_until_the_extended_date(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, PRESERVATION)
    await _renew(client, env, case, "order-2", "order-1", "2026-12-20T00:00:00Z")
    env.clock.now = _at("2027-01-15T00:00:00Z")  # past the first order's 2026-12-30
    assert await _runtime(client).orders.sweep() == 0
    assert (await client.delete(_record_url(case), headers=env.service(*EU_WRITER))).status == 409
    env.clock.now = _at("2027-03-30T00:00:01Z")
    assert await _runtime(client).orders.sweep() == 1
    assert (await client.delete(_record_url(case), headers=env.service(*EU_WRITER))).status == 204


# --- 3. explain changes nothing ----------------------------------------------------------


def _state(env: Env) -> dict[str, str]:
    return tree_digest(env.settings.ledger_path.parent, env.data_dir / "stores", env.data_dir / "control")


async def _explain(client: TestClient, env: Env, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await client.post("/v1/explain", json=body, headers=env.person("legal", "counsel"))
    return response.status, await response.json()


async def test_explaining_an_order_changes_no_ledger_store_or_control_file(client: TestClient, env: Env) -> None:
    case = await _start(client, env, PRESERVATION)
    before = _state(env)
    status, document = await _explain(client, env, {"order": sign_case(env, case)})
    assert status == 200, document
    assert item_for(document, case.subject.id, "content")["records"]  # submitting it would place a hold
    assert _state(env) == before


async def test_explaining_an_order_returns_its_decision_with_the_trace(client: TestClient, env: Env) -> None:
    case = await _start(client, env, EPOC_HOLD)
    status, document = await _explain(client, env, {"order": sign_case(env, case)})
    assert status == 200
    assert item_for(document, case.subject.id, "traffic")["outcome"] == "hold"
    assert document["explain"]["side_effects"] is False
    assert any("hold" in line for line in document["trace"])


async def test_explaining_a_forged_order_refuses_it_and_records_nothing(client: TestClient, env: Env) -> None:
    case = await _start(client, env, WARRANT)
    before = _state(env)
    status, body = await _explain(client, env, {"order": _forgery(env, case, "forged")})
    assert (status, body["code"]) == (422, "bad-signature")
    assert _state(env) == before


async def test_explaining_an_order_at_a_given_time_decides_as_of_then(client: TestClient, env: Env) -> None:
    case = await _start(client, env, EXPIRED_WARRANT)
    token = sign_case(env, case)
    status, _ = await _explain(client, env, {"order": token})
    assert status == 422
    status, document = await _explain(client, env, {"order": token, "at": "2026-08-10T00:00:00Z"})
    assert status == 200, document
    assert document["explain"]["at"].startswith("2026-08-10")


async def test_explaining_at_a_time_before_the_execute_by_date_takes_that_time_as_the_service_time(client: TestClient, env: Env) -> None:
    case = await _start(client, env, EXPIRED_WARRANT)  # exp 2026-08-15; the clock stands at 2026-10-01
    status, document = await _explain(client, env, {"order": sign_case(env, case), "at": "2026-08-14T23:00:00Z"})
    assert status == 200, document
    assert (document["received_at"], item_for(document, case.subject.id, "content")["outcome"]) == ("2026-08-14T23:00:00Z", "disclose")


async def test_explaining_at_the_execute_by_moment_refuses_the_order_as_expired(client: TestClient, env: Env) -> None:
    case = await _start(client, env, EXPIRED_WARRANT)
    status, body = await _explain(client, env, {"order": sign_case(env, case), "at": "2026-08-15T00:00:00Z"})
    assert (status, body["code"]) == (422, "expired")


async def test_explain_needs_the_legal_role(client: TestClient, env: Env) -> None:
    case = await _start(client, env, WARRANT)
    response = await client.post("/v1/explain", json={"order": sign_case(env, case)}, headers=env.person("intake", "portal"))
    assert response.status == 403


# --- 4. packages -------------------------------------------------------------------------


async def _disclosed(client: TestClient, env: Env) -> Case:
    case = await _start(client, env, WARRANT)
    extra = await client.put(
        f"/v1/subjects/{case.subject.id}/records/rec-content-2", params={"category": "content"}, data=b"more content", headers=env.service("crm", "us-east-1")
    )
    assert extra.status == 201
    status, document = await submit(client, env, sign_case(env, case))
    assert status == 201 and item_for(document, case.subject.id, "content")["outcome"] == "disclose", document
    return case


async def test_a_disclosed_orders_package_verifies_under_the_provider_key(client: TestClient, env: Env, tmp_path: Path) -> None:
    case = await _disclosed(client, env)
    status, data, complete = await download_package(client, env, case.order.id)
    assert (status, complete) == (200, True)
    report = verify_package_bytes(env, data, tmp_path)
    assert (report.ok, report.order, report.records, report.problems) == (True, case.order.id, 2, [])


async def test_a_package_announces_its_exact_length(client: TestClient, env: Env) -> None:
    case = await _disclosed(client, env)
    response = await client.get(f"/v1/orders/{case.order.id}/package", headers=env.person("intake", "portal"))
    data = await response.read()
    assert response.headers["Content-Length"] == str(len(data)) and "Transfer-Encoding" not in response.headers


async def test_flipping_any_single_byte_of_a_package_fails_verification(client: TestClient, env: Env, tmp_path: Path) -> None:
    case = await _disclosed(client, env)
    _, data, _ = await download_package(client, env, case.order.id)
    body = data.index(b"content of ")  # a record's bytes
    for offset in (0, 100, 600, body, len(data) - 700, len(data) - 1):  # header, manifest, record, padding, end blocks
        flipped = bytearray(data)
        flipped[offset] ^= 0x01
        assert not verify_package_bytes(env, bytes(flipped), tmp_path).ok, f"a flip at byte {offset} went unnoticed"


async def test_an_order_with_nothing_disclosed_has_no_package(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, PRESERVATION)
    response = await client.get(f"/v1/orders/{case.order.id}/package", headers=env.person("intake", "portal"))
    assert (response.status, (await response.json())["code"]) == (404, "nothing-disclosed")


async def test_a_record_changed_after_the_decision_is_withheld_from_the_package_which_says_so(client: TestClient, env: Env, tmp_path: Path) -> None:
    case = await _disclosed(client, env)
    changed = await client.put(_record_url(case), params={"category": "content"}, data=b"changed since", headers=env.service("crm", "us-east-1"))
    assert changed.status == 200
    status, data, complete = await download_package(client, env, case.order.id)
    assert (status, complete) == (200, True)
    report = verify_package_bytes(env, data, tmp_path)
    assert (report.ok, report.records, [w["detail"] for w in report.withheld]) == (True, 1, ["record-changed"])
    assert b"changed since" not in data


async def test_a_package_needs_the_intake_role(client: TestClient, env: Env) -> None:
    case = await _disclosed(client, env)
    response = await client.get(f"/v1/orders/{case.order.id}/package", headers=env.person("legal", "counsel"))
    assert response.status == 403


# --- 5. an EPOC hold ---------------------------------------------------------------------


async def test_an_epoc_hold_places_a_legal_hold_on_the_records(client: TestClient, env: Env) -> None:
    case, document = await _submitted(client, env, EPOC_HOLD)
    assert item_for(document, case.subject.id, "traffic")["outcome"] == "hold"
    assert (await _runtime(client).stores["eu-west-1"].head(record_key(case.subject.id, "rec-traffic"))).legal_hold
    response = await client.delete(_record_url(case), headers=env.service(*EU_WRITER))
    assert (response.status, (await response.json())["code"]) == (409, "legal-hold")


async def test_an_order_on_hold_shows_holding_and_has_no_package(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, EPOC_HOLD)
    env.clock.now = _at("2026-10-10T23:59:59Z")
    document = await (await client.get(f"/v1/orders/{case.order.id}", headers=env.person("intake", "portal"))).json()
    assert item_for(document, case.subject.id, "traffic")["state"] == "holding"
    assert document["package"]["available"] is False
    response = await client.get(f"/v1/orders/{case.order.id}/package", headers=env.person("intake", "portal"))
    assert (response.status, (await response.json())["code"]) == (404, "nothing-disclosed")


async def test_after_release_at_the_order_shows_released_and_its_package_verifies(client: TestClient, env: Env, tmp_path: Path) -> None:
    case, document = await _submitted(client, env, EPOC_HOLD)
    release_at = _at(item_for(document, case.subject.id, "traffic")["obligations"]["release_at"])
    env.clock.now = release_at.replace(second=1) if release_at.second == 0 else release_at
    document = await (await client.get(f"/v1/orders/{case.order.id}", headers=env.person("legal", "counsel"))).json()
    assert item_for(document, case.subject.id, "traffic")["state"] == "released"
    assert (document["package"]["available"], document["package"]["records"]) == (True, 1)
    status, data, complete = await download_package(client, env, case.order.id)
    assert (status, complete) == (200, True)
    report = verify_package_bytes(env, data, tmp_path)
    assert (report.ok, report.records) == (True, 1), report.problems


async def test_the_sweep_after_release_at_lifts_the_store_hold(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, EPOC_HOLD)
    env.clock.now = _at("2026-10-11T00:00:01Z")
    assert (await client.delete(_record_url(case), headers=env.service(*EU_WRITER))).status == 409  # released on paper, still held
    assert await _runtime(client).orders.sweep() == 1
    assert not (await _runtime(client).stores["eu-west-1"].head(record_key(case.subject.id, "rec-traffic"))).legal_hold
    assert (await client.delete(_record_url(case), headers=env.service(*EU_WRITER))).status == 204


# --- 6. reading an order -----------------------------------------------------------------


@pytest.mark.parametrize("role", ["intake", "legal"])
async def test_an_order_is_readable_by_the_intake_and_legal_roles(client: TestClient, env: Env, role: str) -> None:
    case, submitted = await _submitted(client, env, WARRANT)
    response = await client.get(f"/v1/orders/{case.order.id}", headers=env.person(role, "someone"))
    assert response.status == 200
    assert await response.json() == submitted


async def test_a_service_token_cannot_read_an_order(client: TestClient, env: Env) -> None:
    case, _ = await _submitted(client, env, WARRANT)
    response = await client.get(f"/v1/orders/{case.order.id}", headers=env.service("crm", "us-east-1"))
    assert (response.status, (await response.json())["code"]) == (403, "forbidden")


async def test_an_unknown_order_id_is_not_found(client: TestClient, env: Env) -> None:
    response = await client.get("/v1/orders/no-such-order", headers=env.person("legal", "counsel"))
    assert (response.status, (await response.json())["code"]) == (404, "order-not-found")


async def test_an_order_whose_decision_failed_can_be_submitted_again(client, env, runtime, monkeypatch) -> None:
    from gateway.legal.decision_cases import load_cases
    from tests.orders_support import CASES_DIR, seed_case, sign_case, submit

    scenarios = load_cases([CASES_DIR / "legal-md-scenarios.toml"])

    case = next(c for c in scenarios if c.name.startswith("scenario 1:"))
    env.clock.now = case.at
    await seed_case(client, env, case)
    token = sign_case(env, case)
    real = runtime.control.put

    async def failing(key, body, metadata, **kwargs):
        if key.endswith("/decision"):  # the control store goes away before the decision is stored
            raise OSError("control store went away")
        return await real(key, body, metadata, **kwargs)

    monkeypatch.setattr(runtime.control, "put", failing)
    status, _ = await submit(client, env, token)
    assert status == 500
    monkeypatch.setattr(runtime.control, "put", real)
    status, body = await submit(client, env, token)
    assert status == 201 and body["items"][0]["outcome"] == "disclose"


async def test_a_decision_document_stored_by_the_standard_encoder_with_a_lone_surrogate_still_packages(client: TestClient, env: Env) -> None:
    case = await _disclosed(client, env)
    rt = _runtime(client)
    [key] = [k for k in await rt.control.list("orders/") if k.endswith(f"/{case.order.id}/decision")]
    stored = json.loads((await rt.control.get(key)).body)
    stored["case_ref"] = "\ud800"  # as json.dumps wrote an order's free text before documents were written by orjson
    await rt.control.put(key, json.dumps(stored).encode(), {})
    status, _, complete = await download_package(client, env, case.order.id)
    assert (status, complete) == (200, True)


async def test_a_decision_document_stored_without_later_keys_is_served_exactly_as_stored(client: TestClient, env: Env) -> None:
    case = await _disclosed(client, env)
    rt = _runtime(client)
    [key] = [k for k in await rt.control.list("orders/") if k.endswith(f"/{case.order.id}/decision")]
    stored = json.loads((await rt.control.get(key)).body)
    for name in ("served_by", "whole_order", "submitted_by"):  # keys documents did not have at first
        del stored[name]
    for item in stored["items"]:
        del item["profile_sha256"]
    stored = {"retired": {"kept": True}, **stored}  # a key no version reads any more
    await rt.control.put(key, json.dumps(stored).encode(), {})
    response = await client.get(f"/v1/orders/{case.order.id}", headers=env.person("legal", "counsel"))
    served = json.loads(await response.read())
    del served["summary"], served["package"]
    for item in served["items"]:
        del item["state"]
    assert (list(served), [list(i) for i in served["items"]], served) == (list(stored), [list(i) for i in stored["items"]], stored)
