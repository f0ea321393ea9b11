"""Signed orders: verified step by step with real keys, every refusal named."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gateway.canonical import b64url, b64url_decode
from gateway.keys import PrivateKey, PublicKey
from gateway.legal.orders import Authority, Offence, Order
from gateway.legal.verify import OrderRejected, order_fingerprint, sign_order, verify_order

NOW = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
IAT = int((NOW - timedelta(hours=1)).timestamp())
EXP = int((NOW + timedelta(days=4)).timestamp())

COURT = Authority("aa-court", "Court of Aland", "AX", "court", "keys/aa-court.pub")
SERVER = Authority("aa-designated", "Designated authority of Aland", "AX", "designated-authority", "keys/aa-designated.pub")
POLICE = Authority("bb-police", "Police of Borduria", "BB", "police", "keys/bb-police.pub")
AUTHORITIES = {a.id: a for a in (COURT, SERVER, POLICE)}

COURT_KEY = ed25519.Ed25519PrivateKey.generate()
SERVER_KEY = ed25519.Ed25519PrivateKey.generate()
POLICE_KEY = ec.generate_private_key(ec.SECP256R1())
KEYS: dict[str, PublicKey] = {"aa-court": COURT_KEY.public_key(), "aa-designated": SERVER_KEY.public_key(), "bb-police": POLICE_KEY.public_key()}

INSTRUMENTS = ("aa.warrant", "bb.request")
CATEGORIES = ("subscriber", "identification", "traffic", "content")


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "jti": "order-1",
        "iss": "aa-court",
        "iat": IAT,
        "exp": EXP,
        "instrument": "aa.warrant",
        "subjects": ["acct-1", "acct-2"],
        "categories": ["content"],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def sign(body: Mapping[str, Any] | None = None, *, key: PrivateKey = COURT_KEY, kid: str = "aa-court") -> str:
    return sign_order(claims() if body is None else body, key=key, kid=kid)


def by_hand(header: Mapping[str, Any], body: Mapping[str, Any], signer: Any) -> str:
    """A token built without sign_order: ``signer`` maps the signing input to signature bytes."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(body).encode())}"
    return f"{signing_input}.{b64url(signer(signing_input.encode()))}"


def verify(token: str | bytes, *, now: datetime = NOW, received_at: datetime | None = None) -> Order:
    return verify_order(
        token, authorities=AUTHORITIES, keys=KEYS, instruments=INSTRUMENTS, categories=CATEGORIES, now=now, received_at=received_at
    )


def rejected(token: str | bytes, **kwargs: Any) -> OrderRejected:
    with pytest.raises(OrderRejected) as caught:
        verify(token, **kwargs)
    return caught.value


# --- what verifies ---------------------------------------------------------------------


def test_a_well_formed_eddsa_order_verifies_to_the_expected_order() -> None:
    token = sign(
        claims(
            nbf=IAT,
            made_at="2026-09-15T00:00:00Z",
            offence={"description": "fraud", "max_penalty_years": 5, "committed_in": "AX"},
            nondisclosure_until=EXP,
            case_ref="AA-2026-17",
        )
    )
    assert verify(token, received_at=NOW - timedelta(minutes=5)) == Order(
        id="order-1",
        issuer=COURT,
        served_by=COURT,
        instrument="aa.warrant",
        subjects=("acct-1", "acct-2"),
        categories=("content",),
        issued_at=NOW - timedelta(hours=1),
        expires_at=NOW + timedelta(days=4),
        not_before=NOW - timedelta(hours=1),
        made_at=datetime(2026, 9, 15, tzinfo=UTC),
        offence=Offence("fraud", 5.0, "AX"),
        nondisclosure_until=NOW + timedelta(days=4),
        case_ref="AA-2026-17",
        received_at=NOW - timedelta(minutes=5),
    )


def test_an_es256_order_signed_with_a_p256_key_verifies() -> None:
    order = verify(sign(claims(iss="bb-police", instrument="bb.request", emergency={"reason": "threat to life"}), key=POLICE_KEY, kid="bb-police"))
    assert (order.issuer, order.emergency_reason, order.emergency) == (POLICE, "threat to life", True)


def test_an_order_served_by_another_authority_keeps_issuer_and_server_apart() -> None:
    order = verify(sign(key=SERVER_KEY, kid="aa-designated"))
    assert (order.issuer, order.served_by) == (COURT, SERVER)


def test_the_order_is_received_now_unless_told_otherwise() -> None:
    assert verify(sign()).received_at == NOW


def test_empty_or_wildcard_subjects_are_left_for_the_engine_to_refuse() -> None:
    assert verify(sign(claims(subjects=[]))).subjects == ()
    assert verify(sign(claims(subjects=["*"]))).subjects == ("*",)


def test_an_order_signed_with_pyjwt_verifies() -> None:
    token = jwt.encode(claims(iss="bb-police"), POLICE_KEY, algorithm="ES256", headers={"kid": "bb-police"})
    assert verify(token).issuer == POLICE


def test_pyjwt_verifies_orders_made_by_sign_order() -> None:
    # PyJWT would check exp against the wall clock; the dates here are fixed.
    eddsa = jwt.decode(sign(), COURT_KEY.public_key(), algorithms=["EdDSA"], options={"verify_exp": False, "verify_iat": False})
    es256 = jwt.decode(
        sign(key=POLICE_KEY, kid="bb-police"), POLICE_KEY.public_key(), algorithms=["ES256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert eddsa == es256 == claims()


def test_unknown_claims_are_ignored() -> None:
    assert verify(sign(claims(x_portal_ref="abc"))).id == "order-1"


# --- R0: the requester -----------------------------------------------------------------


def test_an_order_signed_by_another_key_has_a_bad_signature() -> None:
    error = rejected(sign(key=ed25519.Ed25519PrivateKey.generate()))
    assert (error.code, error.rule) == ("bad-signature", "R0")


def test_alg_none_is_a_bad_signature() -> None:
    token = by_hand({"alg": "none", "kid": "aa-court"}, claims(), lambda _: b"")
    assert rejected(token).code == "bad-signature"


def test_hs256_with_the_authoritys_public_key_pem_as_secret_is_a_bad_signature() -> None:
    pem = COURT_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    token = by_hand({"alg": "HS256", "kid": "aa-court", "typ": "JWT"}, claims(), lambda data: hmac.new(pem, data, hashlib.sha256).digest())
    assert rejected(token).code == "bad-signature"


def test_an_algorithm_that_does_not_match_the_registered_key_type_is_a_bad_signature() -> None:
    # A valid ES256 signature by a P-256 key, under a kid whose registered key is Ed25519.
    assert rejected(sign(key=POLICE_KEY, kid="aa-court")).code == "bad-signature"


def test_an_es256_signature_in_der_form_is_a_bad_signature() -> None:
    token = by_hand(
        {"alg": "ES256", "kid": "bb-police"}, claims(iss="bb-police"), lambda data: POLICE_KEY.sign(data, ec.ECDSA(hashes.SHA256()))
    )
    assert rejected(token).code == "bad-signature"


def test_an_unknown_kid_is_an_unverified_authority() -> None:
    error = rejected(sign(kid="zz-stranger"))
    assert (error.code, error.rule) == ("unverified-authority", "R0")


def test_a_token_without_kid_is_an_unverified_authority() -> None:
    token = by_hand({"alg": "EdDSA", "typ": "JWT"}, claims(), COURT_KEY.sign)
    assert rejected(token).code == "unverified-authority"


def test_an_unknown_issuer_is_an_unverified_authority() -> None:
    error = rejected(sign(claims(iss="zz-stranger")))
    assert (error.code, error.rule) == ("unverified-authority", "R0")


def test_a_payload_edited_after_signing_has_a_bad_signature() -> None:
    header, payload, signature = sign().split(".")
    body = json.loads(b64url_decode(payload))
    body["categories"] = ["content", "traffic"]
    assert rejected(f"{header}.{b64url(json.dumps(body).encode())}.{signature}").code == "bad-signature"


def test_a_garbage_string_is_a_malformed_order() -> None:
    error = rejected("this is not an order")
    assert (error.code, error.rule) == ("malformed-order", "R0")


def test_base64_padding_in_a_part_is_a_malformed_order() -> None:
    header, payload, signature = sign().split(".")
    assert rejected(f"{header}.{payload}.{signature}==").code == "malformed-order"


def test_a_header_that_is_not_a_json_object_is_a_malformed_order() -> None:
    assert rejected(f"{b64url(b'[1]')}.{b64url(b'{}')}.{b64url(b'x')}").code == "malformed-order"


def test_the_token_may_be_given_as_bytes() -> None:
    assert verify(sign().encode("ascii")).id == "order-1"


# --- R1: form validity -----------------------------------------------------------------


def test_a_missing_jti_is_a_malformed_order_naming_the_claim() -> None:
    error = rejected(sign(claims(jti=...)))
    assert (error.code, error.rule) == ("malformed-order", "R1")
    assert "`jti`" in error.message


def test_categories_that_are_not_a_list_are_a_malformed_order() -> None:
    error = rejected(sign(claims(categories="content")))
    assert error.code == "malformed-order"
    assert error.message == "claim `categories` must be a list of strings"


def test_an_empty_category_list_is_a_malformed_order() -> None:
    assert rejected(sign(claims(categories=[]))).code == "malformed-order"


def test_a_non_integer_exp_is_a_malformed_order() -> None:
    assert "`exp`" in rejected(sign(claims(exp="2026-10-05"))).message


def test_an_unknown_member_of_offence_is_a_malformed_order() -> None:
    error = rejected(sign(claims(offence={"description": "fraud", "max_penalty_year": 5})))
    assert (error.code, "`max_penalty_year`" in error.message) == ("malformed-order", True)


def test_an_unknown_member_of_emergency_is_a_malformed_order() -> None:
    assert rejected(sign(claims(emergency={"reason": "threat", "urgent": True}))).code == "malformed-order"


def test_a_negative_penalty_is_a_malformed_order() -> None:
    assert rejected(sign(claims(offence={"description": "fraud", "max_penalty_years": -1}))).code == "malformed-order"


def test_a_listed_offence_claim_is_read_as_a_boolean() -> None:
    order = verify(sign(claims(offence={"description": "illegal system interference", "max_penalty_years": 2, "listed": True})))
    assert order.offence == Offence("illegal system interference", 2.0, None, True)


@pytest.mark.parametrize("listed", ["true", 1, "yes", [True]])
def test_a_listed_offence_claim_that_is_not_a_boolean_is_a_malformed_order_naming_the_claim(listed: object) -> None:
    error = rejected(sign(claims(offence={"description": "fraud", "max_penalty_years": 2, "listed": listed})))
    assert (error.code, error.details.get("claim"), "`offence.listed`" in error.message) == ("malformed-order", "offence.listed", True)


def test_an_order_served_before_its_exp_is_not_expired_when_verified_later() -> None:
    later = NOW + timedelta(days=5)
    assert verify(sign(), now=later, received_at=NOW).received_at == NOW


def test_an_order_served_after_its_exp_is_expired() -> None:
    later = NOW + timedelta(days=5)
    assert rejected(sign(), now=later, received_at=later).code == "expired"


def test_an_expired_order_is_refused_as_expired() -> None:
    error = rejected(sign(), now=NOW + timedelta(days=5))
    assert (error.code, error.rule) == ("expired", "R1")


def test_an_order_is_expired_at_the_second_of_its_exp_with_no_leeway() -> None:
    assert rejected(sign(), now=datetime.fromtimestamp(EXP, UTC)).code == "expired"


def test_an_order_whose_nbf_is_in_the_future_is_not_yet_valid() -> None:
    error = rejected(sign(claims(nbf=int((NOW + timedelta(hours=1)).timestamp()))))
    assert (error.code, error.rule) == ("not-yet-valid", "R1")


def test_nbf_within_thirty_seconds_of_now_is_tolerated() -> None:
    assert verify(sign(claims(nbf=int(NOW.timestamp()) + 20))).id == "order-1"


def test_an_order_issued_in_the_future_is_not_yet_valid() -> None:
    assert rejected(sign(claims(iat=int((NOW + timedelta(minutes=5)).timestamp())))).code == "not-yet-valid"


def test_an_unknown_instrument_is_refused() -> None:
    error = rejected(sign(claims(instrument="zz.writ")))
    assert (error.code, error.rule) == ("unknown-instrument", "R1")


def test_an_unknown_category_is_refused() -> None:
    assert rejected(sign(claims(categories=["content", "dna"]))).code == "unknown-category"


# --- fingerprints ----------------------------------------------------------------------


def test_the_fingerprint_of_the_same_token_is_the_same() -> None:
    token = sign()
    assert order_fingerprint(token) == order_fingerprint(token) == order_fingerprint(token.encode())


def test_the_fingerprint_differs_when_the_body_differs() -> None:
    assert order_fingerprint(sign()) != order_fingerprint(sign(claims(categories=["traffic"])))


def test_a_garbage_token_still_has_a_fingerprint() -> None:
    assert len(order_fingerprint("not a token")) == 64


def test_the_same_claims_signed_twice_with_es256_have_one_fingerprint() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    body = claims()
    first, second = sign_order(body, key=key, kid=body["iss"]), sign_order(body, key=key, kid=body["iss"])
    assert first != second
    assert order_fingerprint(first) == order_fingerprint(second)


def test_the_fingerprint_differs_when_only_the_signing_authority_differs() -> None:
    assert order_fingerprint(sign()) != order_fingerprint(sign(key=SERVER_KEY, kid="aa-designated"))


def test_the_fingerprint_differs_when_only_the_header_differs() -> None:
    body = claims()
    plain = by_hand({"alg": "EdDSA", "kid": "aa-court"}, body, COURT_KEY.sign)
    typed = by_hand({"alg": "EdDSA", "kid": "aa-court", "typ": "JWT"}, body, COURT_KEY.sign)
    assert order_fingerprint(plain) != order_fingerprint(typed)
