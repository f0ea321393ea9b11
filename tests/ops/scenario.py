"""A run of the gateway with distinctive personal values, to look for them where they must not be.

Subject ids, record keys, record content and residence/nationality/location
values are unusual strings or codes no label or log line would hold by chance.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.config import load_config
from gateway.keys import load_private_key, resolve
from gateway.legal.verify import sign_order
from gateway.web.state import STATE_KEY
from tests.support import Env

SUBJECT_US = "zqsubj-us-8841"
SUBJECT_EU = "zqsubj-eu-5520"
KEY_US = "zqkey-profile-3307"
KEY_EU = "zqkey-inbox-6612"
CONTENT_US = b"zq-content-us: the secret word is marmalade-4471"
CONTENT_EU = b"zq-content-eu: the secret word is quince-9930"
# residence, nationality, location: codes of no configured region, caller or authority
PROFILE = {"residence": "MT", "nationality": "LI", "location": "IS"}
PERSONAL_STRINGS = (SUBJECT_US, SUBJECT_EU, KEY_US, KEY_EU, CONTENT_US.decode(), CONTENT_EU.decode(), "marmalade", "quince")
PERSONAL_CODES = tuple(PROFILE.values())
REQUEST_ID = "scenario-req-0001"

WRITER = ("security-operations", "us-east-1", "incident-response")  # group BCR: may write in every region


def _sign(env: Env, kid: str, claims: dict[str, Any]) -> str:
    config = load_config(env.settings.config_path)
    public = resolve(env.data_dir, config.legal.authorities[kid].public_key)
    return sign_order(claims, key=load_private_key(public.with_suffix(".key")), kid=kid)


def _claims(env: Env, jti: str, iss: str, instrument: str, subject: str) -> dict[str, Any]:
    now = env.clock()
    return {
        "jti": jti,
        "iss": iss,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(days=4)).timestamp()),
        "instrument": instrument,
        "subjects": [subject],
        "categories": ["content"],
    }


async def _order(client: TestClient, env: Env, token: str) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        "/v1/orders",
        data=token,
        headers={**env.person("intake", "portal"), "Content-Type": "application/jose", "X-Request-ID": REQUEST_ID},
    )
    return response.status, await response.json()


async def run(client: TestClient, env: Env) -> dict[str, Any]:
    """Writes, a permitted read, a 451, a listing, a disclosed order and its package, a preservation, a forged order, a sweep."""
    rid = {"X-Request-ID": REQUEST_ID}
    for subject, region, key, body in ((SUBJECT_US, "us-east-1", KEY_US, CONTENT_US), (SUBJECT_EU, "eu-west-1", KEY_EU, CONTENT_EU)):
        profile = {"home_region": region, **PROFILE, "us_person": region == "us-east-1"}
        response = await client.put(f"/v1/subjects/{subject}", json=profile, headers={**env.service(*WRITER), **rid})
        assert response.status in (200, 201), await response.text()
        response = await client.put(f"/v1/subjects/{subject}/records/{key}", params={"category": "content"}, data=body, headers={**env.service(*WRITER), **rid})
        assert response.status in (200, 201), await response.text()

    response = await client.get(f"/v1/subjects/{SUBJECT_US}/records/{KEY_US}", headers={**env.service("billing", "us-east-1"), **rid})
    assert response.status == 200 and await response.read() == CONTENT_US
    response = await client.get(f"/v1/subjects/{SUBJECT_EU}/records/{KEY_EU}", headers={**env.service("analytics", "us-east-1"), **rid})
    assert response.status == 451, await response.text()
    response = await client.get(f"/v1/subjects/{SUBJECT_EU}/records", headers={**env.service("support", "eu-west-1"), **rid})
    assert response.status == 200

    status, warrant = await _order(client, env, _sign(env, "us-court-sdny", _claims(env, "ops-warrant-1", "us-court-sdny", "us.warrant", SUBJECT_US)))
    assert status == 201 and warrant["items"][0]["outcome"] == "disclose", warrant
    response = await client.get(f"/v1/orders/{warrant['id']}/package", headers={**env.person("intake", "portal"), **rid})
    assert response.status == 200
    await response.read()

    status, preservation = await _order(client, env, _sign(env, "us-fbi", _claims(env, "ops-preserve-1", "us-fbi", "us.preservation", SUBJECT_EU)))
    assert status == 201 and preservation["items"][0]["outcome"] == "preserve", preservation

    forged = sign_order(_claims(env, "ops-forged-1", "us-fbi", "us.warrant", SUBJECT_US), key=ed25519.Ed25519PrivateKey.generate(), kid="us-fbi")
    status, refused = await _order(client, env, forged)
    assert status == 422 and refused["code"] == "bad-signature", refused

    await client.app[STATE_KEY].rt.orders.sweep()
    assert (await client.get("/readyz", headers=rid)).status == 200
    return {"warrant": warrant, "preservation": preservation}


async def exposition(client: TestClient) -> str:
    response = await client.get("/metrics")
    assert response.status == 200
    return await response.text()
