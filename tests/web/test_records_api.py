"""The data plane over HTTP: subjects, records, residency decisions, auth."""

from __future__ import annotations

import io

from aiohttp.test_utils import TestClient

from gateway.audit import verify_file
from gateway.model import Caller
from tests.support import Env

AOIFE = {"home_region": "eu-west-1", "residence": "IE", "nationality": "IE", "us_person": False, "location": "IE"}
ALICE = {"home_region": "us-east-1", "residence": "US", "nationality": "US", "us_person": True, "location": "US"}
WRITER = ("security-operations", "us-east-1", "incident-response")  # group BCR: may write in every region


async def register(client: TestClient, env: Env, subject: str, profile: dict) -> None:
    response = await client.put(f"/v1/subjects/{subject}", json=profile, headers=env.service(*WRITER))
    assert response.status in (200, 201), await response.text()


async def store(client: TestClient, env: Env, subject: str, key: str, body: bytes, category: str = "content") -> dict:
    response = await client.put(
        f"/v1/subjects/{subject}/records/{key}", params={"category": category}, data=body, headers=env.service(*WRITER)
    )
    assert response.status in (200, 201), await response.text()
    return await response.json()


async def test_registering_a_new_subject_answers_201(client: TestClient, env: Env) -> None:
    response = await client.put("/v1/subjects/aoife", json=AOIFE, headers=env.service(*WRITER))
    assert response.status == 201
    assert (await response.json())["home_region"] == "eu-west-1"


async def test_registering_the_same_subject_again_answers_200(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    response = await client.put("/v1/subjects/aoife", json=AOIFE, headers=env.service(*WRITER))
    assert response.status == 200


async def test_moving_a_subject_to_another_region_is_a_conflict(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    response = await client.put("/v1/subjects/aoife", json=ALICE, headers=env.service(*WRITER))
    assert response.status == 409
    assert (await response.json())["code"] == "subject-region-conflict"


async def test_registering_a_subject_in_an_unknown_region_is_a_400_naming_the_region(client: TestClient, env: Env) -> None:
    response = await client.put("/v1/subjects/x", json={**AOIFE, "home_region": "mars-1"}, headers=env.service(*WRITER))
    body = await response.json()
    assert response.status == 400
    assert body["code"] == "unknown-region" and "`mars-1`" in body["detail"]
    assert response.content_type == "application/problem+json"


async def test_a_subject_with_an_unknown_field_is_rejected(client: TestClient, env: Env) -> None:
    response = await client.put("/v1/subjects/x", json={**AOIFE, "shoe_size": 9}, headers=env.service(*WRITER))
    assert response.status == 400 and (await response.json())["code"] == "invalid-subject"


async def test_a_subject_id_ending_in_a_newline_is_refused_and_nothing_is_stored(client: TestClient, env: Env, runtime) -> None:
    response = await client.put("/v1/subjects/aoife%0A", json=AOIFE, headers=env.service(*WRITER))
    assert response.status == 400
    assert [key for store in runtime.stores.values() for key in await store.list("")] == []


async def test_a_write_for_an_unknown_subject_is_a_404(client: TestClient, env: Env) -> None:
    response = await client.put("/v1/subjects/nobody/records/k", params={"category": "content"}, data=b"x", headers=env.service(*WRITER))
    assert response.status == 404 and (await response.json())["code"] == "unknown-subject"


async def test_a_write_without_a_category_is_a_400(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    response = await client.put("/v1/subjects/aoife/records/k", data=b"x", headers=env.service(*WRITER))
    assert response.status == 400 and (await response.json())["code"] == "invalid-category"


async def test_a_write_with_an_unknown_category_is_a_400(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    response = await client.put("/v1/subjects/aoife/records/k", params={"category": "secrets"}, data=b"x", headers=env.service(*WRITER))
    assert response.status == 400 and "`secrets`" in (await response.json())["detail"]


async def test_a_write_returns_the_signed_tag_naming_the_home_region(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    tag = (await store(client, env, "aoife", "mail-1", b"hi"))["tag"]
    assert tag["region"] == "eu-west-1" and tag["jurisdiction"] == "IE" and tag["category"] == "content"


async def test_a_record_lands_in_its_subjects_home_region_store(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    await store(client, env, "aoife", "mail-1", b"hi")
    assert (env.data_dir / "stores/eu-west-1/objects/subjects/aoife/records/mail-1").exists()
    assert not (env.data_dir / "stores/us-east-1/objects/subjects/aoife").exists()


async def test_a_caller_in_the_same_jurisdiction_reads_the_record(client: TestClient, env: Env) -> None:
    await register(client, env, "alice", ALICE)
    await store(client, env, "alice", "mail-1", b"hello alice")
    response = await client.get("/v1/subjects/alice/records/mail-1", headers=env.service("support", "us-east-1"))
    assert response.status == 200
    assert await response.read() == b"hello alice"
    assert response.headers["X-Residency-Region"] == "us-east-1"


async def test_an_eu_record_read_by_a_us_caller_without_a_mechanism_is_451(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    await store(client, env, "aoife", "mail-1", b"private")
    response = await client.get("/v1/subjects/aoife/records/mail-1", headers=env.service("analytics", "us-east-1"))
    body = await response.json()
    assert response.status == 451
    assert body["code"] == "residency-refused"
    assert body["reasons"][0]["rule"] == "residency.default-deny"
    assert "private" not in await response.text()


async def test_a_451_names_who_blocked_it(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    await store(client, env, "aoife", "mail-1", b"private")
    response = await client.get("/v1/subjects/aoife/records/mail-1", headers=env.service("analytics", "us-east-1"))
    assert 'rel="blocked-by"' in response.headers["Link"]


async def test_an_eu_record_read_by_a_us_caller_under_a_mechanism_covering_its_purpose_is_served(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    await store(client, env, "aoife", "invoice-1", b"amount 10", category="subscriber")
    response = await client.get("/v1/subjects/aoife/records/invoice-1", headers=env.service("billing", "us-east-1", "billing"))
    assert response.status == 200 and await response.read() == b"amount 10"


async def test_a_covered_service_with_another_purpose_is_451(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    await store(client, env, "aoife", "invoice-1", b"amount 10")
    response = await client.get("/v1/subjects/aoife/records/invoice-1", headers=env.service("billing", "us-east-1", "marketing"))
    assert response.status == 451 and (await response.json())["reasons"][0]["code"] == "purpose-not-covered"


async def test_listing_returns_metadata_and_no_content(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    await store(client, env, "aoife", "mail-1", b"secret words")
    response = await client.get("/v1/subjects/aoife/records", headers=env.service("support", "eu-central-1"))
    body = await response.json()
    assert response.status == 200
    assert [r["key"] for r in body["records"]] == ["mail-1"]
    assert "secret words" not in await response.text()


async def test_listing_is_subject_to_the_residency_decision(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    response = await client.get("/v1/subjects/aoife/records", headers=env.service("analytics", "us-east-1"))
    assert response.status == 451


async def test_a_missing_record_is_a_404(client: TestClient, env: Env) -> None:
    await register(client, env, "alice", ALICE)
    response = await client.get("/v1/subjects/alice/records/nope", headers=env.service("support", "us-east-1"))
    assert response.status == 404 and (await response.json())["code"] == "record-not-found"


async def test_a_request_without_a_token_is_401(client: TestClient) -> None:
    response = await client.get("/v1/subjects/alice/records")
    assert response.status == 401 and (await response.json())["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_an_expired_token_is_401(client: TestClient, env: Env) -> None:
    headers = env.service("support", "us-east-1")
    env.clock.advance(hours=3)
    response = await client.get("/v1/subjects/alice/records", headers=headers)
    assert response.status == 401 and (await response.json())["code"] == "token-expired"


async def test_a_forged_token_is_401(client: TestClient, env: Env) -> None:
    token = env.token(Caller("support", "service", service="support", region="us-east-1", purpose="support"))
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{'A' * len(signature)}"
    response = await client.get("/v1/subjects/alice/records", headers={"Authorization": f"Bearer {forged}"})
    assert response.status == 401 and (await response.json())["code"] == "token-invalid"


async def test_a_legal_token_may_not_use_the_data_plane(client: TestClient, env: Env) -> None:
    response = await client.get("/v1/subjects/alice/records", headers=env.person("legal", "lawyer-1"))
    assert response.status == 403 and (await response.json())["code"] == "forbidden"


async def test_every_read_decision_is_in_the_ledger(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    await store(client, env, "aoife", "mail-1", b"x")
    await client.get("/v1/subjects/aoife/records/mail-1", headers=env.service("analytics", "us-east-1"))
    await client.get("/v1/subjects/aoife/records/mail-1", headers=env.service("support", "eu-west-1"))
    entries = [e for e in _entries(env) if e["kind"] == "service.read"]
    assert [e["data"]["outcome"] for e in entries] == ["refuse", "allow"]
    assert verify_file(env.settings.ledger_path).ok


async def test_the_ledger_holds_ids_and_hashes_not_content(client: TestClient, env: Env) -> None:
    await register(client, env, "aoife", AOIFE)
    await store(client, env, "aoife", "mail-1", b"very-secret-content")
    await client.get("/v1/subjects/aoife/records/mail-1", headers=env.service("support", "eu-west-1"))
    assert b"very-secret-content" not in env.settings.ledger_path.read_bytes()


async def test_a_read_is_refused_when_the_ledger_cannot_be_written(client: TestClient, env: Env, runtime, monkeypatch) -> None:
    await register(client, env, "aoife", AOIFE)
    await store(client, env, "aoife", "mail-1", b"must-not-leak")

    async def broken(kind, data):
        raise OSError("disk full")

    monkeypatch.setattr(runtime.ledger, "append", broken)
    response = await client.get("/v1/subjects/aoife/records/mail-1", headers=env.service("support", "eu-west-1"))
    assert response.status == 503 and (await response.json())["code"] == "ledger-unavailable"
    assert b"must-not-leak" not in await response.read()


async def test_a_record_larger_than_the_limit_is_413(client: TestClient, env: Env, runtime) -> None:
    await register(client, env, "aoife", AOIFE)
    big = io.BytesIO(b"x" * (runtime.config.limits.max_record_bytes + 1))
    headers = {**env.service(*WRITER), "Content-Length": str(runtime.config.limits.max_record_bytes + 1)}
    response = await client.put("/v1/subjects/aoife/records/big", params={"category": "content"}, data=big, headers=headers)
    assert response.status == 413


async def test_a_supplied_request_id_is_echoed(client: TestClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


async def test_an_unknown_route_is_a_problem_document(client: TestClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status == 404 and (await response.json())["code"] == "not-found"


def _entries(env: Env) -> list[dict]:
    import json

    return [json.loads(line) for line in env.settings.ledger_path.read_text().splitlines()]


async def test_the_openapi_document_lists_every_served_v1_route(client: TestClient) -> None:
    spec = await (await client.get("/openapi.json")).json()
    served = {
        (r.resource.canonical, r.method.lower())
        for r in client.app.router.routes()
        if r.resource and r.resource.canonical.startswith("/v1/") and r.method != "HEAD"
    }
    described = {(path, method) for path, methods in spec["paths"].items() for method in methods}
    assert served <= described
