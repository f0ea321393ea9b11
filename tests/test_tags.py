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


# --- seals: the signing gateway's own shortcut for step (4) -------------------------------


def sealing_verifier(seal_keys: dict[str, bytes] | None = None) -> tuple[TagVerifier, CountingKey]:
    counting = CountingKey(KEYS["north-1"].public_key())
    keys = {"north-1": counting, "south-1": KEYS["south-1"].public_key()}
    jurisdictions = {"north-1": "AA", "south-1": "BB"}
    chosen = SIGNER.seal_keys if seal_keys is None else seal_keys
    return TagVerifier(keys, jurisdictions, cache_entries=0, seal_keys=chosen), counting  # type: ignore[arg-type]


def sealed_read(verifier: TagVerifier, blob: str, seal: object, *, store_region: str = "north-1", key: str = "k1") -> ResidencyTag:
    return verifier.verify(blob, store_region=store_region, subject="s1", key=key, sha256=sha256_hex(BODY), size=len(BODY), seal=seal)  # type: ignore[arg-type]


def test_a_tag_with_a_valid_seal_is_accepted_without_a_signature_check() -> None:
    verifier, counting = sealing_verifier()
    blob = SIGNER.sign(tag())
    assert sealed_read(verifier, blob, SIGNER.seal("north-1", blob)) == tag()
    assert counting.calls == 0


def test_a_sealed_tag_still_fails_in_another_regions_store() -> None:
    verifier, _ = sealing_verifier()
    blob = SIGNER.sign(tag())
    with pytest.raises(TagViolation) as caught:
        sealed_read(verifier, blob, SIGNER.seal("north-1", blob), store_region="south-1")
    assert caught.value.code == "tag-region-mismatch"


def test_a_forged_tag_with_a_seal_from_another_key_is_still_refused() -> None:
    verifier, counting = sealing_verifier()
    forger = TagSigner({"north-1": ed25519.Ed25519PrivateKey.generate()})
    blob = forger.sign(tag())
    with pytest.raises(TagViolation) as caught:
        sealed_read(verifier, blob, forger.seal("north-1", blob))
    assert (caught.value.code, counting.calls) == ("tag-signature-invalid", 1)


def test_a_seal_copied_from_another_tag_does_not_vouch_for_this_one() -> None:
    verifier, counting = sealing_verifier()
    other = SIGNER.sign(tag(key="k2"))
    blob = SIGNER.sign(tag())
    sealed_read(verifier, blob, SIGNER.seal("north-1", other))
    assert counting.calls == 1  # checked by its signature instead


def test_a_seal_under_another_regions_key_does_not_vouch_for_the_tag() -> None:
    verifier, counting = sealing_verifier()
    blob = SIGNER.sign(tag())
    sealed_read(verifier, blob, SIGNER.seal("south-1", blob))
    assert counting.calls == 1


def test_a_verifier_without_seal_keys_checks_the_signature_of_a_sealed_tag() -> None:
    verifier, counting = sealing_verifier(seal_keys={})
    blob = SIGNER.sign(tag())
    sealed_read(verifier, blob, SIGNER.seal("north-1", blob))
    assert counting.calls == 1


@pytest.mark.parametrize("seal", [None, "", "s1.é", 42, "s1.AAAA"])
def test_a_missing_or_malformed_seal_falls_back_to_the_signature_check(seal: object) -> None:
    verifier, counting = sealing_verifier()
    assert sealed_read(verifier, SIGNER.sign(tag()), seal) == tag()
    assert counting.calls == 1


def test_each_regions_seal_key_differs_and_is_not_its_tag_key() -> None:
    raw = {region: key.private_bytes_raw() for region, key in KEYS.items()}
    assert SIGNER.seal_keys["north-1"] != SIGNER.seal_keys["south-1"]
    assert all(SIGNER.seal_keys[region] != raw[region] for region in KEYS)


def test_a_validly_sealed_tag_is_quick_to_verify() -> None:
    verifier, _ = sealing_verifier()
    blob = SIGNER.sign(tag())
    assert verifier.is_quick(blob, SIGNER.seal("north-1", blob), "north-1")


def test_an_unsealed_tag_not_yet_verified_is_not_quick() -> None:
    verifier, _ = sealing_verifier()
    assert not verifier.is_quick(SIGNER.sign(tag()), None, "north-1")


def test_a_sealed_tag_found_quick_is_then_verified_without_a_signature_check() -> None:
    verifier, counting = remembering_sealing_verifier()
    blob = SIGNER.sign(tag())
    assert verifier.is_quick(blob, SIGNER.seal("north-1", blob), "north-1")
    assert sealed_read(verifier, blob, None) == tag()  # remembered by is_quick: the seal is not asked for again
    assert counting.calls == 0


def test_a_sealed_tag_naming_the_wrong_jurisdiction_is_quick_but_still_refused() -> None:
    verifier, _ = remembering_sealing_verifier()
    blob = SIGNER.sign(tag(jurisdiction="BB"))
    seal = SIGNER.seal("north-1", blob)
    assert verifier.is_quick(blob, seal, "north-1")
    with pytest.raises(TagViolation) as caught:
        sealed_read(verifier, blob, seal)
    assert caught.value.code == "tag-jurisdiction-mismatch"


def remembering_sealing_verifier() -> tuple[TagVerifier, CountingKey]:
    counting = CountingKey(KEYS["north-1"].public_key())
    verifier = TagVerifier({"north-1": counting}, {"north-1": "AA"}, seal_keys=SIGNER.seal_keys)  # type: ignore[dict-item]
    return verifier, counting


def test_a_remembered_tag_is_quick_without_a_seal() -> None:
    verifier, _ = counting_verifier()
    blob = SIGNER.sign(tag())
    verify_with = dict(store_region="north-1", subject="s1", key="k1", sha256=None, size=None)
    verifier.verify(blob, **verify_with)  # type: ignore[arg-type]
    assert verifier.is_quick(blob, None, "north-1")


def test_a_tag_signed_over_claims_not_in_canonical_form_is_malformed() -> None:
    claims = {**tag().claims(), "v": 1}
    payload = json.dumps(claims, indent=1).encode()  # the same claims, spaced out
    blob = f"{b64url(payload)}.{b64url(KEYS['north-1'].sign(payload))}"
    assert violation(blob) == "tag-malformed"


def test_a_non_ascii_tag_beside_a_seal_is_a_violation_not_a_crash() -> None:
    verifier, _ = sealing_verifier()
    blob = SIGNER.sign(tag()) + "é"
    assert not verifier.is_quick(blob, SIGNER.seal("north-1", SIGNER.sign(tag())), "north-1")
    with pytest.raises(TagViolation):
        sealed_read(verifier, blob, "s1.AAAA")
