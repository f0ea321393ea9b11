"""The `[s3]` table of regions.toml: the front's port, its virtual-host domain and its buckets, checked with key paths."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gateway.config import S3Bucket, parse_config
from gateway.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[2] / "regions.toml"


def with_s3(table: dict) -> dict:
    return {**tomllib.loads(SHIPPED.read_text()), "s3": table}


def messages(table: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(with_s3(table))
    return {f.path: f.message for f in caught.value.findings}


def test_a_home_region_bucket_and_a_subject_routed_bucket_are_read_with_their_default_categories() -> None:
    config = parse_config(
        with_s3({"port": 9000, "buckets": {"eu-data": {"home_region": "eu-west-1", "default_category": "content"}, "records": {"route": "subject"}}})
    )
    assert (config.s3.port, dict(config.s3.buckets)) == (
        9000,
        {"eu-data": S3Bucket("eu-data", "eu-west-1", "content"), "records": S3Bucket("records", None, None)},
    )


def test_the_virtual_host_domain_is_read() -> None:
    assert parse_config(with_s3({"virtual_host": "s3.gateway.local"})).s3.virtual_host == "s3.gateway.local"


def test_a_bucket_with_an_unknown_home_region_is_reported_at_its_key() -> None:
    assert messages({"buckets": {"eu-data": {"home_region": "eu-centr-1"}}}) == {"s3.buckets.eu-data.home_region": "unknown region `eu-centr-1`"}


def test_a_bucket_with_both_a_home_region_and_a_route_is_reported() -> None:
    assert list(messages({"buckets": {"eu-data": {"home_region": "eu-west-1", "route": "subject"}}})) == ["s3.buckets.eu-data"]


def test_a_bucket_with_neither_a_home_region_nor_a_route_is_reported() -> None:
    assert list(messages({"buckets": {"eu-data": {"default_category": "content"}}})) == ["s3.buckets.eu-data"]


def test_an_unknown_route_is_reported() -> None:
    assert messages({"buckets": {"eu-data": {"route": "prefix"}}}) == {"s3.buckets.eu-data.route": 'unknown route `prefix`; the one route is `"subject"`'}


def test_a_name_that_is_not_an_s3_bucket_name_is_reported() -> None:
    assert list(messages({"buckets": {"EU_Data": {"route": "subject"}}})) == ["s3.buckets.EU_Data"]


def test_an_unknown_default_category_is_reported() -> None:
    assert list(messages({"buckets": {"eu-data": {"route": "subject", "default_category": "secrets"}}})) == ["s3.buckets.eu-data.default_category"]


def test_a_port_out_of_range_is_reported() -> None:
    assert list(messages({"port": 70000})) == ["s3.port"]


def test_a_virtual_host_that_is_not_a_dns_name_is_reported() -> None:
    assert list(messages({"virtual_host": "*.s3.gateway.local"})) == ["s3.virtual_host"]


def test_an_unknown_key_in_a_bucket_is_reported() -> None:
    assert list(messages({"buckets": {"eu-data": {"route": "subject", "versioning": True}}})) == ["s3.buckets.eu-data.versioning"]
