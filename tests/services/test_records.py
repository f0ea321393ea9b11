"""RecordService with in-memory twins: routing, tags, violations, ledger."""

from __future__ import annotations

import pytest

from gateway.errors import Conflict
from gateway.model import Caller
from gateway.services.records import ResidencyRefused, ResidencyViolation, home_claim_key, record_key
from gateway.stores.memory import MemoryStore
from tests.services.conftest import AOIFE, WRITER, build_service, replica, shipped_config

US_SUPPORT = Caller("support", "service", service="support", region="us-east-1", purpose="support")
EU_SUPPORT = Caller("support", "service", service="support", region="eu-central-1", purpose="support")


@pytest.fixture
def setup():
    config = shipped_config()
    stores = {r: MemoryStore(r) for r in config.regions}
    service, metrics, ledger = build_service(config, stores)
    return service, stores, metrics, ledger


def violations(metrics, region: str, reason: str) -> float:
    return metrics.registry.get_sample_value("gateway_residency_violations_total", {"region": region, "reason": reason}) or 0.0


async def test_a_record_is_written_only_to_its_subjects_home_region(setup) -> None:
    service, stores, _, _ = setup
    await service.register_subject(WRITER, AOIFE)
    await service.put_record(WRITER, "aoife", "mail-1", "content", b"x")
    assert await stores["eu-west-1"].list("subjects/aoife/records/") == ["subjects/aoife/records/mail-1"]
    for region, other in stores.items():
        if region != "eu-west-1":
            assert await other.list("subjects/") == []


async def test_a_tampered_body_is_refused_and_counted(setup) -> None:
    service, stores, metrics, _ = setup
    await service.register_subject(WRITER, AOIFE)
    await service.put_record(WRITER, "aoife", "mail-1", "content", b"original")
    store = stores["eu-west-1"]
    obj = await store.get(record_key("aoife", "mail-1"))
    await store.put(obj.key, b"tampered", obj.metadata)
    with pytest.raises(ResidencyViolation) as caught:
        await service.get_record(EU_SUPPORT, "aoife", "mail-1")
    assert caught.value.details["reasons"][0]["code"] == "tag-content-mismatch"
    assert violations(metrics, "eu-west-1", "tag-content-mismatch") == 1


async def test_a_record_with_its_tag_removed_is_refused_and_counted(setup) -> None:
    service, stores, metrics, _ = setup
    await service.register_subject(WRITER, AOIFE)
    await service.put_record(WRITER, "aoife", "mail-1", "content", b"x")
    store = stores["eu-west-1"]
    obj = await store.get(record_key("aoife", "mail-1"))
    await store.put(obj.key, obj.body, {})
    with pytest.raises(ResidencyViolation):
        await service.get_record(EU_SUPPORT, "aoife", "mail-1")
    assert violations(metrics, "eu-west-1", "tag-missing") == 1


async def test_a_violation_is_written_to_the_ledger(setup) -> None:
    service, stores, _, ledger = setup
    await service.register_subject(WRITER, AOIFE)
    await service.put_record(WRITER, "aoife", "mail-1", "content", b"x")
    obj = await stores["eu-west-1"].get(record_key("aoife", "mail-1"))
    await stores["eu-west-1"].put(obj.key, b"y", obj.metadata)
    with pytest.raises(ResidencyViolation):
        await service.get_record(EU_SUPPORT, "aoife", "mail-1")
    assert (await ledger.entries())[-1]["kind"] == "residency.violation"


async def test_a_refused_read_is_ledgered_before_the_refusal(setup) -> None:
    service, _, _, ledger = setup
    await service.register_subject(WRITER, AOIFE)
    await service.put_record(WRITER, "aoife", "mail-1", "content", b"x")
    with pytest.raises(ResidencyRefused):
        await service.get_record(US_SUPPORT, "aoife", "mail-1")
    last = (await ledger.entries())[-1]
    assert (last["kind"], last["data"]["outcome"]) == ("service.read", "refuse")


async def test_a_refused_read_never_touches_the_record(setup, monkeypatch) -> None:
    service, stores, _, _ = setup
    await service.register_subject(WRITER, AOIFE)
    await service.put_record(WRITER, "aoife", "mail-1", "content", b"x")

    async def must_not_be_called(key):
        raise AssertionError("the body was fetched for a refused read")

    monkeypatch.setattr(stores["eu-west-1"], "get", must_not_be_called)
    with pytest.raises(ResidencyRefused):
        await service.get_record(US_SUPPORT, "aoife", "mail-1")


async def test_a_subject_without_a_home_claim_found_in_two_regions_is_refused_as_ambiguous(setup) -> None:
    service, stores, _, _ = setup
    await service.register_subject(WRITER, AOIFE)
    profile = await stores["eu-west-1"].get("subjects/aoife/profile")
    await stores["us-east-1"].put("subjects/aoife/profile", profile.body, {})
    await service.control.delete(home_claim_key("aoife"))  # registered before home claims existed
    with pytest.raises(Conflict) as caught:
        await replica(service).subject("aoife")
    assert caught.value.code == "subject-ambiguous"


async def test_a_copy_of_a_claimed_subjects_profile_in_another_region_is_never_read(setup) -> None:
    service, stores, _, _ = setup
    await service.register_subject(WRITER, AOIFE)
    profile = await stores["eu-west-1"].get("subjects/aoife/profile")
    await stores["us-east-1"].put("subjects/aoife/profile", profile.body, {})
    assert (await replica(service).subject("aoife")).home_region == "eu-west-1"


async def test_a_record_with_a_forged_tag_is_refused_and_counted(setup) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from gateway.canonical import sha256_hex
    from gateway.model import ResidencyTag
    from gateway.tags import TagSigner

    service, stores, metrics, _ = setup
    await service.register_subject(WRITER, AOIFE)
    body = b"planted"
    forged = TagSigner({"eu-west-1": ed25519.Ed25519PrivateKey.generate()}).sign(
        ResidencyTag("eu-west-1", "IE", "aoife", "planted-1", "content", sha256_hex(body), len(body), "2026-10-01T00:00:00Z")
    )
    await stores["eu-west-1"].put(record_key("aoife", "planted-1"), body, {"residency-tag": forged})
    with pytest.raises(ResidencyViolation) as caught:
        await service.get_record(EU_SUPPORT, "aoife", "planted-1")
    assert caught.value.details["reasons"][0]["code"] == "tag-signature-invalid"
    assert violations(metrics, "eu-west-1", "tag-signature-invalid") == 1


async def test_a_listing_leaves_out_records_whose_tag_fails(setup) -> None:
    service, stores, metrics, _ = setup
    await service.register_subject(WRITER, AOIFE)
    await service.put_record(WRITER, "aoife", "good", "content", b"x")
    await stores["eu-west-1"].put(record_key("aoife", "untagged"), b"y", {})
    metas = (await service.list_records(EU_SUPPORT, "aoife")).records
    assert [m.key for m in metas] == ["good"]
    assert violations(metrics, "eu-west-1", "tag-missing") == 1


async def test_a_stored_record_carries_its_tags_seal(setup) -> None:
    service, stores, _, _ = setup
    await service.register_subject(WRITER, AOIFE)
    await service.put_record(WRITER, "aoife", "notes", "content", b"x")
    metadata = (await stores["eu-west-1"].head(record_key("aoife", "notes"))).metadata
    assert metadata["tag-seal"] == service.signer.seal("eu-west-1", metadata["residency-tag"])


async def test_a_forged_tag_beside_a_seal_copied_from_a_good_record_is_refused(setup) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from gateway.canonical import sha256_hex
    from gateway.model import ResidencyTag
    from gateway.tags import TagSigner

    service, stores, _, _ = setup
    await service.register_subject(WRITER, AOIFE)
    await service.put_record(WRITER, "aoife", "good", "content", b"x")
    seal = (await stores["eu-west-1"].head(record_key("aoife", "good"))).metadata["tag-seal"]
    body = b"planted"
    forged = TagSigner({"eu-west-1": ed25519.Ed25519PrivateKey.generate()}).sign(
        ResidencyTag("eu-west-1", "IE", "aoife", "planted-1", "content", sha256_hex(body), len(body), "2026-10-01T00:00:00Z")
    )
    await stores["eu-west-1"].put(record_key("aoife", "planted-1"), body, {"residency-tag": forged, "tag-seal": seal})
    with pytest.raises(ResidencyViolation) as caught:
        await service.get_record(EU_SUPPORT, "aoife", "planted-1")
    assert caught.value.details["reasons"][0]["code"] == "tag-signature-invalid"
