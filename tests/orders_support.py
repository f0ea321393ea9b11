"""Turning decision cases into signed orders and HTTP submissions."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import ClientPayloadError
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.audit import merge_chains
from gateway.audit.chains import read_local
from gateway.canonical import b64url, canonical
from gateway.config import load_config
from gateway.keys import load_ed25519_public, load_private_key, public_path_for, resolve
from gateway.legal.decision_cases import Case, load_cases
from gateway.legal.verify import sign_order
from gateway.packages import PackageReport, verify_package
from gateway.runtime import init_keys
from tests.support import Env


def prepare_authorities(env: Env) -> None:
    """Key pairs for every registered authority, as the demo makes them."""
    init_keys(load_config(env.settings.config_path), env.data_dir, demo_authorities=True)


def claims_of(case: Case) -> dict[str, Any]:
    spec = case.order
    served = spec.received_at or case.at  # over HTTP an order is decided when it is served
    expires = spec.expires_at or served + timedelta(days=30)
    issued = spec.issued_at or min(served, expires - timedelta(days=14))  # an order already expired was issued before
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
        if spec.offence.listed is not None:
            offence["listed"] = spec.offence.listed
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
    writer = ("crm", case.stored, "crm")  # a service in the subject's home region: every write is decided like a read
    for subject_id in case.order.subjects:
        if subject_id in ("", "*") or any(c in subject_id for c in "*?%"):
            continue
        profile = {"home_region": case.stored, "residence": subject.residence}
        for name in ("nationality", "us_person", "location"):
            if getattr(subject, name) is not None:
                profile[name] = getattr(subject, name)
        response = await client.put(f"/v1/subjects/{subject_id}", json=profile, headers=env.service(*writer))
        assert response.status in (200, 201), await response.text()
        if case.has_records:
            response = await client.put(
                f"/v1/subjects/{subject_id}/records/rec-{case.category}",
                params={"category": case.category},
                data=f"{case.category} of {subject_id}".encode(),
                headers=env.service(*writer),
            )
            assert response.status in (200, 201), await response.text()


async def submit(client: TestClient, env: Env, token: str) -> tuple[int, dict[str, Any]]:
    response = await client.post("/v1/orders", data=token, headers={**env.person("intake", "portal"), "Content-Type": "application/jose"})
    return response.status, await response.json()


def item_for(document: dict[str, Any], subject: str, category: str) -> dict[str, Any]:
    return next(i for i in document["items"] if i["subject"] == subject and i["category"] == category)


# --- helpers for the order API tests ------------------------------------------------------

CASES_DIR = Path(__file__).resolve().parent / "cases"


def case_named(name: str) -> Case:
    """The decision case called ``name`` in ``tests/cases``."""
    return next(c for c in load_cases([CASES_DIR]) if c.name == name)


def ledger_entries(env: Env, kind: str | None = None) -> list[dict[str, Any]]:
    """The ledger's entries, optionally of one kind: every chain in the data folder, each verified, as one ledger."""
    chains = read_local(env.settings.ledger_dir)
    return [dict(e) for e in merge_chains(chains[c] for c in sorted(chains)) if kind is None or e["kind"] == kind]


def tree_digest(*roots: Path) -> dict[str, str]:
    """Every file under ``roots``: its path and the SHA-256 of its bytes."""
    found: dict[str, str] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def provider_public_key(env: Env) -> ed25519.Ed25519PublicKey:
    config = load_config(env.settings.config_path)
    return load_ed25519_public(public_path_for(resolve(env.data_dir, config.identity.provider_key)))


def verify_package_bytes(env: Env, data: bytes, folder: Path) -> PackageReport:
    """Write ``data`` to a file in ``folder`` and verify it offline with the provider's public key."""
    path = folder / f"package-{hashlib.sha256(data).hexdigest()[:16]}.tar"
    path.write_bytes(data)
    return verify_package(path, provider_public_key(env))


async def download_package(client: TestClient, env: Env, order_id: str) -> tuple[int, bytes, bool]:
    """(status, the bytes received, whether the body arrived complete) of an order's package."""
    response = await client.get(f"/v1/orders/{order_id}/package", headers=env.person("intake", "portal"))
    received = bytearray()
    complete = True
    try:
        async for chunk in response.content.iter_any():
            received += chunk
    except ClientPayloadError:
        complete = False
    response.release()
    return response.status, bytes(received), complete
