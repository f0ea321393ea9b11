"""Turning decision cases into signed orders and HTTP submissions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.canonical import b64url, canonical
from gateway.config import load_config
from gateway.keys import load_private_key, resolve
from gateway.legal.cases import Case
from gateway.legal.verify import sign_order
from gateway.runtime import init_keys
from tests.support import Env

WRITER = ("crm", "us-east-1", "crm")


def prepare_authorities(env: Env) -> None:
    """Key pairs for every registered authority, as the demo makes them."""
    init_keys(load_config(env.settings.config_path), env.data_dir, demo_authorities=True)


def claims_of(case: Case) -> dict[str, Any]:
    spec = case.order
    expires = spec.expires_at or case.at + timedelta(days=30)
    issued = spec.issued_at or min(case.at, expires - timedelta(days=14))  # an order already expired was issued before
    claims: dict[str, Any] = {
        "jti": spec.id,
        "iss": spec.issuer,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        "instrument": spec.instrument,
        "subjects": list(spec.subjects),
        "categories": list(spec.categories),
    }
    if spec.not_before:
        claims["nbf"] = int(spec.not_before.timestamp())
    if spec.made_at:
        claims["made_at"] = int(spec.made_at.timestamp())
    if spec.offence:
        offence: dict[str, Any] = {"description": spec.offence.description}
        if spec.offence.max_penalty_years is not None:
            offence["max_penalty_years"] = spec.offence.max_penalty_years
        if spec.offence.committed_in:
            offence["committed_in"] = spec.offence.committed_in
        claims["offence"] = offence
    if spec.emergency_reason:
        claims["emergency"] = {"reason": spec.emergency_reason}
    if spec.nondisclosure_until:
        claims["nondisclosure_until"] = int(spec.nondisclosure_until.timestamp())
    if spec.case_ref:
        claims["case_ref"] = spec.case_ref
    if spec.renews:
        claims["renews"] = spec.renews
    return claims


def sign_case(env: Env, case: Case, claims: dict[str, Any] | None = None) -> str:
    claims = claims or claims_of(case)
    kid = case.order.served_by
    if case.order.signature == "missing":
        return f"{b64url(canonical({'alg': 'none', 'kid': kid}))}.{b64url(canonical(claims))}."
    if case.order.signature == "invalid":
        return sign_order(claims, key=ed25519.Ed25519PrivateKey.generate(), kid=kid)
    if case.order.signature == "unregistered":
        return sign_order(claims, key=ed25519.Ed25519PrivateKey.generate(), kid="unregistered-authority")
    config = load_config(env.settings.config_path)
    public = resolve(env.data_dir, config.legal.authorities[kid].public_key)
    return sign_order(claims, key=load_private_key(public.with_suffix(".key")), kid=kid)


async def seed_case(client: TestClient, env: Env, case: Case) -> None:
    """Register the case's subject(s) in the stored region and write one record of the category."""
    subject = case.subject
    for subject_id in case.order.subjects:
        if subject_id in ("", "*") or any(c in subject_id for c in "*?%"):
            continue
        profile = {"home_region": case.stored, "residence": subject.residence}
        for name in ("nationality", "us_person", "location"):
            if getattr(subject, name) is not None:
                profile[name] = getattr(subject, name)
        response = await client.put(f"/v1/subjects/{subject_id}", json=profile, headers=env.service(*WRITER))
        assert response.status in (200, 201), await response.text()
        if case.has_records:
            response = await client.put(
                f"/v1/subjects/{subject_id}/records/rec-{case.category}",
                params={"category": case.category},
                data=f"{case.category} of {subject_id}".encode(),
                headers=env.service(*WRITER),
            )
            assert response.status in (200, 201), await response.text()


async def submit(client: TestClient, env: Env, token: str) -> tuple[int, dict[str, Any]]:
    response = await client.post("/v1/orders", data=token, headers={**env.person("intake", "portal"), "Content-Type": "application/jose"})
    return response.status, await response.json()


def item_for(document: dict[str, Any], subject: str, category: str) -> dict[str, Any]:
    return next(i for i in document["items"] if i["subject"] == subject and i["category"] == category)
