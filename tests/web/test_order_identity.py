"""Order identity: an order id belongs to its issuer, and only who may serve for that issuer can claim it.

Driven through the HTTP API with the demo authorities' real keys: authority B
signs an order that names authority A as its issuer and reuses A's order id,
then A's genuine order arrives.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from aiohttp.test_utils import TestClient

from gateway.legal.verify import claims_fingerprint, order_fingerprint
from gateway.web.state import STATE_KEY
from tests.orders_support import case_named, claims_of, item_for, ledger_entries, seed_case, sign_case, submit
from tests.support import Env

WARRANT = "scenario 1: US court warrant for a US citizen's content stored in the US"
OPO = "scenario 8: UK OPO via the Secretary of State for a Pakistani national in the UK"
# Another country's police, and an authority of the issuer's own country that is not designated to serve its orders.
FORGERS = ["gb-police", "us-fbi"]


def _served_by(case, kid: str):  # type: ignore[no-untyped-def]
    return dataclasses.replace(case, order=dataclasses.replace(case.order, served_by=kid))


async def _start(client: TestClient, env: Env, name: str):  # type: ignore[no-untyped-def]
    case = case_named(name)
    env.clock.now = case.at
    await seed_case(client, env, case)
    return case


async def _control_keys(client: TestClient) -> list[str]:
    return sorted(await client.app[STATE_KEY].rt.control.list("orders/"))


@pytest.mark.parametrize("forger", FORGERS)
async def test_an_order_signed_by_an_authority_that_may_not_serve_for_its_issuer_is_refused_as_improper_service(
    client: TestClient, env: Env, forger: str
) -> None:
    case = await _start(client, env, WARRANT)
    status, body = await submit(client, env, sign_case(env, _served_by(case, forger)))
    assert (status, body["code"], body["outcome"]) == (422, "improper-service", "refuse")
    assert body["reasons"][0]["code"] == "improper-service"
    assert forger in body["detail"] and case.order.issuer in body["detail"]


@pytest.mark.parametrize("forger", FORGERS)
async def test_an_improperly_served_order_is_ledgered_as_rejected_and_claims_nothing_in_the_issuers_namespace(
    client: TestClient, env: Env, forger: str
) -> None:
    case = await _start(client, env, WARRANT)
    token = sign_case(env, _served_by(case, forger))
    await submit(client, env, token)
    rejected = [e["data"] for e in ledger_entries(env, "order.rejected")]
    assert [(r["reason"], r["fingerprint"], r["order"], r["issuer"], r["served_by"]) for r in rejected] == [
        ("improper-service", order_fingerprint(token), case.order.id, case.order.issuer, forger)
    ]
    assert ledger_entries(env, "order.received") == [] and ledger_entries(env, "order.decided") == []
    assert await _control_keys(client) == []


@pytest.mark.parametrize("forger", FORGERS)
async def test_the_issuers_genuine_order_after_a_forgery_under_its_id_is_decided_on_its_own_merits(
    client: TestClient, env: Env, forger: str
) -> None:
    case = await _start(client, env, WARRANT)
    await submit(client, env, sign_case(env, _served_by(case, forger)))
    status, document = await submit(client, env, sign_case(env, case))
    assert status == 201, document
    assert (document["served_by"], document["whole_order"]) == (case.order.issuer, None)
    assert item_for(document, case.subject.id, "content")["outcome"] == "disclose"


async def test_the_issuers_genuine_order_after_a_forgery_with_other_claims_under_its_id_is_not_a_replay(client: TestClient, env: Env) -> None:
    case = await _start(client, env, WARRANT)
    forged_claims = {**claims_of(case), "categories": ["subscriber"], "case_ref": "forged"}
    await submit(client, env, sign_case(env, _served_by(case, "gb-police"), forged_claims))
    status, document = await submit(client, env, sign_case(env, case))
    assert status == 201, document
    assert item_for(document, case.subject.id, "content")["outcome"] == "disclose"
    assert [e["data"]["reason"] for e in ledger_entries(env, "order.rejected")] == ["improper-service"]


async def test_an_order_served_by_the_issuers_designated_authority_claims_the_issuers_id(client: TestClient, env: Env) -> None:
    case = await _start(client, env, OPO)
    status, document = await submit(client, env, sign_case(env, case))
    assert status == 201, document
    assert (document["authority"], document["served_by"]) == ("gb-court", "gb-sos")
    assert item_for(document, case.subject.id, "content")["outcome"] == "disclose"


async def test_an_order_its_issuer_may_not_serve_itself_leaves_the_id_free_for_proper_service(client: TestClient, env: Env) -> None:
    case = await _start(client, env, OPO)
    status, body = await submit(client, env, sign_case(env, _served_by(case, "gb-court")))  # an OPO must come through the Secretary of State
    assert (status, body["code"]) == (422, "improper-service")
    status, document = await submit(client, env, sign_case(env, case))
    assert status == 201, document


async def test_the_same_genuine_order_submitted_twice_is_answered_with_one_decision(client: TestClient, env: Env) -> None:
    case = await _start(client, env, WARRANT)
    await submit(client, env, sign_case(env, _served_by(case, "gb-police")))
    token = sign_case(env, case)
    first_status, first = await submit(client, env, token)
    again_status, again = await submit(client, env, token)
    assert (first_status, again_status, again) == (201, 200, first)
    assert len(ledger_entries(env, "order.decided")) == 1


async def test_a_genuine_different_body_under_a_used_id_is_still_replayed(client: TestClient, env: Env) -> None:
    case = await _start(client, env, WARRANT)
    await submit(client, env, sign_case(env, case))
    status, body = await submit(client, env, sign_case(env, case, {**claims_of(case), "case_ref": "another case"}))
    assert (status, body["code"]) == (409, "replayed")


# --- orders claimed before the fingerprint covered the signed header --------------------


async def _as_stored_by_the_previous_version(client: TestClient, case, token: str) -> None:  # type: ignore[no-untyped-def]
    """Rewrite the claim and document of an accepted order as the previous version stored them: a claims-only fingerprint."""
    control = client.app[STATE_KEY].rt.control
    legacy = claims_fingerprint(token)
    claim_key = f"orders/{case.order.issuer}/{case.order.id}/claim"
    claim = json.loads((await control.get(claim_key)).body)
    await control.put(claim_key, json.dumps({"fingerprint": legacy, "received_at": claim["received_at"]}).encode(), {})
    doc_key = f"orders/{case.order.issuer}/{case.order.id}/decision"
    document = json.loads((await control.get(doc_key)).body)
    await control.put(doc_key, json.dumps({**document, "fingerprint": legacy}).encode(), {})


async def test_an_order_stored_by_the_previous_version_is_still_answered_with_its_decision_on_resubmission(client: TestClient, env: Env) -> None:
    case = await _start(client, env, WARRANT)
    token = sign_case(env, case)
    _, first = await submit(client, env, token)
    await _as_stored_by_the_previous_version(client, case, token)
    status, again = await submit(client, env, token)
    assert status == 200, again
    assert again["items"] == first["items"]


async def test_a_different_body_under_an_id_stored_by_the_previous_version_is_replayed(client: TestClient, env: Env) -> None:
    case = await _start(client, env, WARRANT)
    token = sign_case(env, case)
    await submit(client, env, token)
    await _as_stored_by_the_previous_version(client, case, token)
    status, body = await submit(client, env, sign_case(env, case, {**claims_of(case), "case_ref": "another case"}))
    assert (status, body["code"]) == (409, "replayed")
