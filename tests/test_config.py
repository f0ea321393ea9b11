"""regions.toml parsing: every problem reported with its key path."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gateway.config import load_config, parse_config
from gateway.errors import ConfigError, Finding
from gateway.model import FileStoreSpec, S3StoreSpec

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "regions.toml"


def shipped() -> dict:
    return tomllib.loads(SHIPPED.read_text())


def findings_of(raw: dict) -> list[Finding]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return caught.value.findings


def paths(findings: list[Finding]) -> set[str]:
    return {f.path for f in findings}


def test_the_shipped_regions_file_is_valid() -> None:
    config = load_config(SHIPPED)
    assert set(config.regions) == {"us-east-1", "eu-west-1", "eu-central-1", "eu-west-2", "ap-southeast-2"}


def test_the_shipped_regions_have_the_legal_model_jurisdictions() -> None:
    config = load_config(SHIPPED)
    assert {r.id: r.jurisdiction for r in config.regions.values()} == {
        "us-east-1": "US",
        "eu-west-1": "IE",
        "eu-central-1": "DE",
        "eu-west-2": "GB",
        "ap-southeast-2": "AU",
    }


def test_the_category_ladder_keeps_its_order() -> None:
    config = load_config(SHIPPED)
    assert config.categories == ("subscriber", "identification", "traffic", "content")
    assert config.rank["content"] > config.rank["traffic"] > config.rank["subscriber"]


def test_an_unknown_jurisdiction_in_a_region_is_reported_with_its_path() -> None:
    raw = shipped()
    raw["regions"]["eu-west-1"]["jurisdiction"] = "XX"
    assert Finding("regions.eu-west-1.jurisdiction", "unknown jurisdiction `XX`") in findings_of(raw)


def test_every_problem_is_reported_not_only_the_first() -> None:
    raw = shipped()
    raw["regions"]["eu-west-1"]["jurisdiction"] = "XX"
    raw["regions"]["us-east-1"]["store"] = {"kind": "tape"}
    raw["transfer_mechanisms"]["eu-us-dpf"]["to"] = ["ZZ"]
    found = paths(findings_of(raw))
    assert {"regions.eu-west-1.jurisdiction", "regions.us-east-1.store.kind", "transfer_mechanisms.eu-us-dpf.to[0]"} <= found


def test_unknown_keys_are_errors() -> None:
    raw = shipped()
    raw["regions"]["eu-west-2"]["jurisdicton"] = "GB"
    raw["colour"] = "blue"
    found = findings_of(raw)
    assert Finding("regions.eu-west-2.jurisdicton", "unknown key") in found
    assert Finding("colour", "unknown key") in found


def test_a_missing_required_key_is_reported() -> None:
    raw = shipped()
    del raw["regions"]["ap-southeast-2"]["location"]
    assert Finding("regions.ap-southeast-2.location", "is required") in findings_of(raw)


def test_a_value_of_the_wrong_type_is_reported() -> None:
    raw = shipped()
    raw["identity"]["token_ttl_seconds"] = "an hour"
    assert Finding("identity.token_ttl_seconds", "must be an integer") in findings_of(raw)


def test_an_unknown_bloc_in_a_jurisdiction_is_reported() -> None:
    raw = shipped()
    raw["jurisdictions"]["NO"]["blocs"] = ["EEA", "NORDIC"]
    assert Finding("jurisdictions.NO.blocs[1]", "unknown bloc `NORDIC`") in findings_of(raw)


def test_a_jurisdiction_code_must_be_iso_alpha_2() -> None:
    raw = shipped()
    raw["jurisdictions"]["USA"] = {"name": "United States"}
    assert any(f.path == "jurisdictions.USA" and "ISO 3166-1" in f.message for f in findings_of(raw))


def test_a_transfer_mechanism_with_no_purposes_covers_nothing_and_is_rejected() -> None:
    raw = shipped()
    raw["transfer_mechanisms"]["eu-us-dpf"]["purposes"] = []
    assert any(f.path == "transfer_mechanisms.eu-us-dpf.purposes" for f in findings_of(raw))


def test_two_regions_may_not_share_a_bucket() -> None:
    raw = shipped()
    raw["regions"]["eu-west-1"]["store"] = {"kind": "s3", "bucket": "records-shared", "region_name": "eu-west-1"}
    raw["regions"]["eu-central-1"]["store"] = {"kind": "s3", "bucket": "records-shared", "region_name": "eu-central-1"}
    assert any(f.path == "regions.eu-central-1.store.bucket" for f in findings_of(raw))


def test_an_s3_store_is_parsed_with_its_options() -> None:
    raw = shipped()
    raw["regions"]["eu-west-1"]["store"] = {
        "kind": "s3",
        "bucket": "exampleco-records-eu-west-1",
        "region_name": "eu-west-1",
        "endpoint_url": "http://127.0.0.1:5000",
        "object_lock": True,
    }
    store = parse_config(raw).regions["eu-west-1"].store
    assert store == S3StoreSpec("exampleco-records-eu-west-1", "eu-west-1", "http://127.0.0.1:5000", True, True)


def with_s3_store(**options: object) -> dict:
    """The shipped file with `eu-west-1` on an S3 bucket, with these store options."""
    raw = shipped()
    raw["regions"]["eu-west-1"]["store"] = {"kind": "s3", "bucket": "exampleco-records-eu-west-1", **options}
    return raw


def test_an_s3_stores_time_outs_attempts_and_deadline_are_read_from_its_table() -> None:
    store = parse_config(with_s3_store(connect_timeout=1, read_timeout=2.5, max_attempts=3, deadline=9)).regions["eu-west-1"].store
    assert isinstance(store, S3StoreSpec)
    assert (store.connect_timeout, store.read_timeout, store.max_attempts, store.deadline) == (1.0, 2.5, 3, 9.0)


def test_an_s3_store_without_time_outs_gets_the_fail_fast_defaults() -> None:
    store = parse_config(with_s3_store()).regions["eu-west-1"].store
    assert isinstance(store, S3StoreSpec)
    assert (store.connect_timeout, store.read_timeout, store.max_attempts, store.deadline) == (0.5, 0.8, 2, 2.0)


def test_bad_s3_time_outs_and_attempts_are_reported_at_their_keys() -> None:
    raw = with_s3_store(connect_timeout=0, read_timeout=True, max_attempts=0, deadline=-1.5)
    store = "regions.eu-west-1.store"
    assert {f"{store}.{key}" for key in ("connect_timeout", "read_timeout", "max_attempts", "deadline")} <= paths(findings_of(raw))


def test_a_file_store_keeps_its_path() -> None:
    assert parse_config(shipped()).regions["us-east-1"].store == FileStoreSpec("stores/us-east-1")


def test_a_file_store_may_turn_reads_on_the_event_loop_off() -> None:
    raw = shipped()
    raw["regions"]["us-east-1"]["store"] = {"kind": "file", "path": "stores/us-east-1", "inline_read_bytes": 0}
    assert parse_config(raw).regions["us-east-1"].store == FileStoreSpec("stores/us-east-1", inline_read_bytes=0)


def test_a_negative_inline_read_size_is_reported_at_its_key() -> None:
    raw = shipped()
    raw["regions"]["us-east-1"]["store"] = {"kind": "file", "path": "stores/us-east-1", "inline_read_bytes": -1}
    assert "regions.us-east-1.store.inline_read_bytes" in paths(findings_of(raw))


def test_a_missing_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(Path("/nonexistent/regions.toml"))
    assert "does not exist" in caught.value.findings[0].message


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "regions.toml"
    bad.write_text("[regions\n")
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    assert "not valid TOML" in caught.value.findings[0].message


def test_the_config_digest_is_stable_for_the_same_content() -> None:
    assert parse_config(shipped()).digest == parse_config(shipped()).digest


def test_the_control_store_defaults_to_a_local_folder() -> None:
    raw = shipped()
    del raw["control"]
    assert parse_config(raw).control == FileStoreSpec("control")


def test_an_unknown_control_store_kind_is_reported() -> None:
    raw = shipped()
    raw["control"]["store"] = {"kind": "floppy"}
    assert any(f.path == "control.store.kind" for f in findings_of(raw))


def test_the_shipped_config_lets_the_customer_portal_relay_customer_consent() -> None:
    assert load_config(SHIPPED).support_access.consent_relays == ("customer-portal",)


def test_without_a_support_access_table_no_service_relays_customer_consent() -> None:
    raw = shipped()
    del raw["support_access"]
    assert parse_config(raw).support_access.consent_relays == ()


def test_an_empty_list_of_consent_relays_is_reported() -> None:
    raw = shipped()
    raw["support_access"]["consent_relays"] = []
    [finding] = findings_of(raw)
    assert finding.path == "support_access.consent_relays" and "at least one service" in finding.message


def test_a_consent_relay_that_is_not_a_service_name_is_reported_at_its_index() -> None:
    raw = shipped()
    raw["support_access"]["consent_relays"] = ["customer-portal", "customer portal"]
    assert findings_of(raw) == [Finding("support_access.consent_relays[1]", "`customer portal` is not a service name (letters, digits, `.`, `_`, `-`)")]


def test_an_unknown_key_in_the_support_access_table_is_reported() -> None:
    raw = shipped()
    raw["support_access"]["consent_relay"] = ["customer-portal"]
    assert Finding("support_access.consent_relay", "unknown key") in findings_of(raw)


def test_a_gateway_starts_with_regions_down_unless_the_startup_table_requires_them_all() -> None:
    assert not parse_config(shipped()).startup.require_all_regions
    raw = shipped() | {"startup": {"require_all_regions": True}}
    assert parse_config(raw).startup.require_all_regions


def test_require_all_regions_must_be_a_boolean() -> None:
    raw = shipped() | {"startup": {"require_all_regions": "yes"}}
    with pytest.raises(ConfigError) as failed:
        parse_config(raw)
    assert any(f.path == "startup.require_all_regions" for f in failed.value.findings)


# --- federation: regions served by peer gateways ---------------------------------------


def federated() -> dict:
    """The shipped file as the Americas gateway of a federation sees it: Europe serves the European regions."""
    raw = shipped()
    raw["federation"] = {"id": "americas", "key": "keys/federation.key"}
    raw["peers"] = {"europe": {"url": "https://gateway.eu.example", "key": "keys/peers/europe.pub"}}
    for region in ("eu-west-1", "eu-central-1", "eu-west-2"):
        raw["regions"][region] = {k: v for k, v in raw["regions"][region].items() if k not in ("store", "tag_key")} | {"owner": "europe"}
    return raw


def test_a_region_served_by_a_peer_has_no_store_here_but_keeps_its_jurisdiction() -> None:
    config = parse_config(federated())
    region = config.regions["eu-west-1"]
    assert (region.owner, region.store, config.jurisdiction_of("eu-west-1").code) == ("europe", None, "IE")


def test_only_the_regions_without_an_owner_are_served_here() -> None:
    assert set(parse_config(federated()).local_regions) == {"us-east-1", "ap-southeast-2"}


def test_without_federation_every_region_is_served_here() -> None:
    config = parse_config(shipped())
    assert (config.federation, dict(config.peers), set(config.local_regions)) == (None, {}, set(config.regions))


def test_a_region_owned_by_an_unknown_peer_is_reported() -> None:
    raw = federated()
    raw["regions"]["eu-west-2"]["owner"] = "uk"
    assert Finding("regions.eu-west-2.owner", "unknown peer `uk`; configured peers: `europe`") in findings_of(raw)


def test_a_peer_without_url_or_key_is_reported() -> None:
    raw = federated()
    raw["peers"]["europe"] = {}
    assert {"peers.europe.url", "peers.europe.key"} <= paths(findings_of(raw))


def test_a_peer_url_that_is_not_http_is_reported() -> None:
    raw = federated()
    raw["peers"]["europe"]["url"] = "gateway.eu.example"
    assert Finding("peers.europe.url", "`gateway.eu.example` must start with `http://` or `https://`") in findings_of(raw)


def test_a_region_with_an_owner_and_a_store_is_reported() -> None:
    raw = federated()
    raw["regions"]["eu-west-1"]["store"] = {"kind": "file", "path": "stores/eu-west-1"}
    message = "region `eu-west-1` is served by peer `europe`, so this gateway has no store for it"
    assert Finding("regions.eu-west-1.store", message) in findings_of(raw)


def test_owners_on_every_region_are_reported() -> None:
    raw = federated()
    for region in ("us-east-1", "ap-southeast-2"):
        raw["regions"][region] = {k: v for k, v in raw["regions"][region].items() if k not in ("store", "tag_key")} | {"owner": "europe"}
    message = "every region is served by a peer; this gateway must serve at least one region itself"
    assert Finding("regions", message) in findings_of(raw)


def test_a_region_owned_by_a_peer_without_federation_is_reported() -> None:
    raw = federated()
    del raw["federation"]
    assert "peers" in paths(findings_of(raw))


def test_a_federation_id_equal_to_the_token_audience_is_reported() -> None:
    raw = federated()
    raw["federation"]["id"] = raw["identity"]["audience"]
    assert "federation.id" in paths(findings_of(raw))


def test_a_peer_that_serves_no_region_is_reported() -> None:
    raw = federated()
    raw["peers"]["apac"] = {"url": "https://gateway.au.example", "key": "keys/peers/apac.pub"}
    assert "peers.apac" in paths(findings_of(raw))


def test_a_gateway_that_names_itself_as_a_peer_is_reported() -> None:
    raw = federated()
    raw["peers"]["americas"] = raw["peers"]["europe"]
    assert "peers.americas" in paths(findings_of(raw))
