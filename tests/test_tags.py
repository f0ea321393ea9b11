"""Residency tags: signed at write, verified at read, every failure named."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.canonical import b64url, b64url_decode, canonical, sha256_hex
from gateway.model import ResidencyTag
from gateway.tags import TagSigner, TagVerifier, TagViolation

BODY = b"hello"
KEYS = {"north-1": ed25519.Ed25519PrivateKey.generate(), "south-1": ed25519.Ed25519PrivateKey.generate()}
SIGNER = TagSigner(KEYS)
VERIFIER = TagVerifier({r: k.public_key() for r, k in KEYS.items()}, {"north-1": "AA", "south-1": "BB"})


def tag(region: str = "north-1", jurisdiction: str = "AA", **changes: object) -> ResidencyTag:
    fields = dict(
        region=region,
        jurisdiction=jurisdiction,
        subject="s1",
        key="k1",
        category="content",
        sha256=sha256_hex(BODY),
        size=len(BODY),
        written_at="2026-10-01T00:00:00Z",
    )
    fields.update(changes)
    return ResidencyTag(**fields)  # type: ignore[arg-type]


def verify(blob: str | None, *, store_region: str = "north-1", body: bytes = BODY, key: str = "k1") -> ResidencyTag:
    return VERIFIER.verify(blob, store_region=store_region, subject="s1", key=key, sha256=sha256_hex(body), size=len(body))


def violation(blob: str | None, **kwargs: object) -> str:
    with pytest.raises(TagViolation) as caught:
        verify(blob, **kwargs)  # type: ignore[arg-type]
    return caught.value.code


def test_a_signed_tag_verifies_against_its_own_object() -> None:
    assert verify(SIGNER.sign(tag())) == tag()


def test_a_missing_tag_is_a_violation() -> None:
    assert violation(None) == "tag-missing"


def test_a_tag_that_is_not_two_base64_parts_is_malformed() -> None:
    assert violation("garbage") == "tag-malformed"


def test_a_tampered_tag_claim_breaks_the_signature() -> None:
    payload, signature = SIGNER.sign(tag()).split(".")
    claims = json.loads(b64url_decode(payload))
    claims["category"] = "subscriber"
    assert violation(f"{b64url(canonical(claims))}.{signature}") == "tag-signature-invalid"


def test_a_tag_signed_with_another_key_is_forged() -> None:
    forger = TagSigner({"north-1": ed25519.Ed25519PrivateKey.generate()})
    assert violation(forger.sign(tag())) == "tag-signature-invalid"


def test_an_object_copied_into_another_regions_store_is_a_violation() -> None:
    assert violation(SIGNER.sign(tag()), store_region="south-1") == "tag-region-mismatch"


def test_a_tag_moved_onto_another_key_is_a_violation() -> None:
    assert violation(SIGNER.sign(tag()), key="k2") == "tag-binding-mismatch"


def test_a_changed_body_is_a_violation() -> None:
    assert violation(SIGNER.sign(tag()), body=b"HELLO") == "tag-content-mismatch"


def test_a_tag_naming_an_unknown_region_is_a_violation() -> None:
    rogue = TagSigner({"west-9": ed25519.Ed25519PrivateKey.generate()})
    assert violation(rogue.sign(tag(region="west-9"))) == "tag-unknown-region"


def test_a_tag_naming_the_wrong_jurisdiction_for_its_region_is_a_violation() -> None:
    assert violation(SIGNER.sign(tag(jurisdiction="BB"))) == "tag-jurisdiction-mismatch"


def test_metadata_only_verification_skips_the_content_hash() -> None:
    blob = SIGNER.sign(tag())
    assert VERIFIER.verify(blob, store_region="north-1", subject="s1", key="k1", sha256=None, size=None) == tag()


class CountingKey:
    """A real public key that counts its signature checks."""

    def __init__(self, key: ed25519.Ed25519PublicKey) -> None:
        self.key, self.calls = key, 0

    def verify(self, signature: bytes, data: bytes) -> None:
        self.calls += 1
        self.key.verify(signature, data)


def counting_verifier(cache_entries: int = 8) -> tuple[TagVerifier, CountingKey]:
    counting = CountingKey(KEYS["north-1"].public_key())
    keys = {"north-1": counting, "south-1": KEYS["south-1"].public_key()}
    return TagVerifier(keys, {"north-1": "AA", "south-1": "BB"}, cache_entries=cache_entries), counting  # type: ignore[arg-type]


def test_a_tag_whose_signature_verified_once_is_not_verified_again() -> None:
    verifier, counting = counting_verifier()
    blob = SIGNER.sign(tag())
    for _ in range(3):
        verifier.verify(blob, store_region="north-1", subject="s1", key="k1", sha256=sha256_hex(BODY), size=len(BODY))
    assert counting.calls == 1


def test_a_remembered_tag_still_fails_in_another_regions_store() -> None:
    verifier, _ = counting_verifier()
    blob = SIGNER.sign(tag())
    verifier.verify(blob, store_region="north-1", subject="s1", key="k1", sha256=sha256_hex(BODY), size=len(BODY))
    with pytest.raises(TagViolation) as caught:
        verifier.verify(blob, store_region="south-1", subject="s1", key="k1", sha256=sha256_hex(BODY), size=len(BODY))
    assert caught.value.code == "tag-region-mismatch"


def test_a_remembered_tag_still_fails_against_a_changed_body() -> None:
    verifier, _ = counting_verifier()
    blob = SIGNER.sign(tag())
    verifier.verify(blob, store_region="north-1", subject="s1", key="k1", sha256=sha256_hex(BODY), size=len(BODY))
    with pytest.raises(TagViolation) as caught:
        verifier.verify(blob, store_region="north-1", subject="s1", key="k1", sha256=sha256_hex(b"jello"), size=5)
    assert caught.value.code == "tag-content-mismatch"


def test_a_forged_tag_is_checked_again_on_every_read() -> None:
    verifier, counting = counting_verifier()
    blob = TagSigner({"north-1": ed25519.Ed25519PrivateKey.generate()}).sign(tag())
    for _ in range(2):
        with pytest.raises(TagViolation):
            verifier.verify(blob, store_region="north-1", subject="s1", key="k1", sha256=sha256_hex(BODY), size=len(BODY))
    assert counting.calls == 2


def test_the_verifier_remembers_at_most_its_configured_number_of_tags() -> None:
    verifier, counting = counting_verifier(cache_entries=2)
    blobs = [SIGNER.sign(tag(key=f"k{i}")) for i in range(3)]
    for i, blob in enumerate(blobs):
        verifier.verify(blob, store_region="north-1", subject="s1", key=f"k{i}", sha256=sha256_hex(BODY), size=len(BODY))
    verifier.verify(blobs[0], store_region="north-1", subject="s1", key="k0", sha256=sha256_hex(BODY), size=len(BODY))
    assert counting.calls == 4  # the oldest was forgotten and verified again
