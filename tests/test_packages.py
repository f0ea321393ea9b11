"""Disclosure packages: streamed one record at a time, verified offline byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import tarfile
from collections import UserString
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.canonical import b64url, canonical, key_id
from gateway.packages import (
    PackageError,
    PackageItem,
    Unreadable,
    build_manifest,
    stream_package,
    verify_package,
)

CREATED = datetime(2026, 10, 1, 9, 30, tzinfo=UTC)
PROVIDER = ed25519.Ed25519PrivateKey.generate()
BODIES = {
    ("acct-1", "north-1", "mail-1"): b"Subject: hello\r\n\r\nsee you at noon\r\n",
    ("acct-1", "north-1", "login-log"): b"x" * 512,  # exactly one block: no padding
    ("acct-2", "south-1", "empty"): b"",
    ("acct-2", "south-1", "photo.jpg"): bytes(range(256)) * 9,
}


def items() -> list[PackageItem]:
    return [
        PackageItem(subject, region, "content", key, hashlib.sha256(body).hexdigest(), len(body), f"tag-of-{key}")
        for (subject, region, key), body in BODIES.items()
    ]


def manifest(key: ed25519.Ed25519PrivateKey = PROVIDER) -> dict[str, Any]:
    return build_manifest("order-1", "aa-court", CREATED, items(), key_id(key.public_key()))


class Store:
    """Record bytes by (subject, region, key); counts batch fetches in flight and logs each record fetched."""

    def __init__(self, bodies: Mapping[tuple[str, str, str], bytes] = BODIES) -> None:
        self.bodies = dict(bodies)
        self.in_flight = 0
        self.most_in_flight = 0
        self.events: list[str] = []
        self.batches: list[list[str]] = []

    async def fetch(self, batch: list[dict[str, Any]]) -> list[bytes]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.batches.append([record["path"] for record in batch])
        self.events += [f"fetch {record['path']}" for record in batch]
        await asyncio.sleep(0)
        self.in_flight -= 1
        return [self.bodies[(record["subject"], record["region"], record["key"])] for record in batch]


async def produce(path: Path, manifest_: dict[str, Any], *, store: Store | None = None, key: ed25519.Ed25519PrivateKey = PROVIDER) -> Path:
    store = store or Store()
    with path.open("wb") as fh:
        async for chunk in stream_package(manifest_, signing_key=key, fetch=store.fetch):
            fh.write(chunk)
    return path


@pytest.fixture
async def package(tmp_path: Path) -> Path:
    return await produce(tmp_path / "package.tar", manifest())


def flipped(source: Path, position: int, target: Path) -> Path:
    data = bytearray(source.read_bytes())
    data[position] ^= 0xFF
    target.write_bytes(bytes(data))
    return target


def offsets(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path, "r:") as tar:
        return {member.name: member for member in tar}


def test_a_streamed_package_verifies(package: Path) -> None:
    report = verify_package(package, PROVIDER.public_key())
    assert (report.ok, report.order, report.records, report.problems) == (True, "order-1", len(BODIES), [])


def test_a_streamed_package_is_a_plain_tar_with_the_manifest_first_the_records_after_and_the_withheld_statement_last(package: Path) -> None:
    with tarfile.open(package, "r:") as tar:
        names = tar.getnames()
        contents = {name: tar.extractfile(name).read() for name in names[2:-2]}  # type: ignore[union-attr]
        statement = json.loads(tar.extractfile("withheld.json").read())  # type: ignore[union-attr]
    assert names[:2] == ["manifest.json", "manifest.sig"]
    assert contents == {f"records/{s}/{r}/{k}": body for (s, r, k), body in BODIES.items()}
    assert names[-2:] == ["withheld.json", "withheld.sig"] and statement["records"] == []


PHOTO = "records/acct-2/south-1/photo.jpg"
MAIL = "records/acct-1/north-1/mail-1"
LONG_KEY = "k" * 128  # longer than a ustar header's name field: the member gets a pax extended header
LONG_PATH = f"records/acct-1/north-1/{LONG_KEY}"


async def long_path_package(path: Path) -> Path:
    body = b"long name"
    item = PackageItem("acct-1", "north-1", "content", LONG_KEY, hashlib.sha256(body).hexdigest(), len(body), "tag")
    manifest_ = build_manifest("order-1", "aa-court", CREATED, [item], key_id(PROVIDER.public_key()))
    return await produce(path, manifest_, store=Store({("acct-1", "north-1", LONG_KEY): body}))


Positions = Callable[[dict[str, tarfile.TarInfo], bytes], Iterable[int]]  # the package's members (tarfile's offsets) and bytes
FLIPS: dict[str, tuple[str, Positions]] = {  # where a flipped byte must be caught: in which package, at which positions
    "manifest header: name": ("plain", lambda m, data: [m["manifest.json"].offset]),
    "manifest header: checksum byte tar ignores": ("plain", lambda m, data: [m["manifest.json"].offset + 155]),
    "manifest body": ("plain", lambda m, data: [m["manifest.json"].offset_data + 10]),
    "signature body": ("plain", lambda m, data: [m["manifest.sig"].offset_data + 5]),
    "signature's last character": ("plain", lambda m, data: [m["manifest.sig"].offset_data + m["manifest.sig"].size - 1]),
    "record header: size field": ("plain", lambda m, data: [m[PHOTO].offset + 124 + 5]),
    "record header: mtime field": ("plain", lambda m, data: [m[PHOTO].offset + 136 + 3]),
    "record body": ("plain", lambda m, data: [m[PHOTO].offset_data + 100]),
    "padding after a record": ("plain", lambda m, data: [m[MAIL].offset_data + m[MAIL].size + 3]),
    "first end-of-archive block": ("plain", lambda m, data: [len(data) - 1024]),
    "last byte": ("plain", lambda m, data: [len(data) - 1]),
    "every seventh byte of the whole file": ("plain", lambda m, data: range(0, len(data), 7)),
    "pax header of a long path": ("long path", lambda m, data: [m[LONG_PATH].offset + 3]),  # tarfile reports the pax header's offset
    "pax record of a long path": ("long path", lambda m, data: [data.index(b"path=", m[LONG_PATH].offset) + 20]),
}


@pytest.mark.parametrize("where", FLIPS)
async def test_flipping_a_byte_fails_verification(where: str, tmp_path: Path) -> None:
    kind, positions = FLIPS[where]
    path = tmp_path / "package.tar"
    package = await produce(path, manifest()) if kind == "plain" else await long_path_package(path)
    assert verify_package(package, PROVIDER.public_key()).ok
    target = tmp_path / "flipped.tar"
    survivors = [n for n in positions(offsets(package), package.read_bytes()) if verify_package(flipped(package, n, target), PROVIDER.public_key()).ok]
    assert survivors == []


def test_bytes_appended_after_the_end_fail_verification(package: Path) -> None:
    with package.open("ab") as fh:
        fh.write(b"\0" * 512)
    assert not verify_package(package, PROVIDER.public_key()).ok


CHANGED = b"Subject: hello\r\n\r\nsee you at ONE\r\n"  # mail-1 changed in the store after the decision, to the same length


async def test_a_record_changed_in_the_store_after_the_decision_is_withheld_and_the_package_still_verifies(tmp_path: Path) -> None:
    store = Store({**BODIES, ("acct-1", "north-1", "mail-1"): CHANGED})
    report = verify_package(await produce(tmp_path / "package.tar", manifest(), store=store), PROVIDER.public_key())
    assert (report.ok, report.records, report.problems) == (True, len(BODIES) - 1, [])
    assert report.withheld == [{"path": "records/acct-1/north-1/mail-1", "reason": "record-integrity", "detail": "record-changed"}]


async def test_the_changed_record_sends_none_of_its_bytes_not_even_its_header(tmp_path: Path) -> None:
    store = Store({**BODIES, ("acct-1", "north-1", "mail-1"): CHANGED})
    data = b"".join([chunk async for chunk in stream_package(manifest(), signing_key=PROVIDER, fetch=store.fetch)])
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        names = tar.getnames()
    assert CHANGED not in data and "records/acct-1/north-1/mail-1" not in names


async def test_the_records_around_a_changed_one_in_its_batch_are_still_sent(tmp_path: Path) -> None:
    store = Store({**BODIES, ("acct-2", "south-1", "empty"): b"REPLACED"})
    data = b"".join([chunk async for chunk in stream_package(manifest(), signing_key=PROVIDER, fetch=store.fetch)])
    assert b"see you at noon" in data and bytes(range(256)) * 9 in data
    assert b"REPLACED" not in data


async def test_a_record_the_store_cannot_read_is_withheld_with_the_stores_reason(tmp_path: Path) -> None:
    class Corrupt(Store):
        async def fetch(self, batch: list[dict[str, Any]]) -> list[bytes | Unreadable]:
            bodies: list[bytes | Unreadable] = list(await super().fetch(batch))
            return [Unreadable("record-corrupt") if r["key"] == "photo.jpg" else body for r, body in zip(batch, bodies, strict=True)]

    report = verify_package(await produce(tmp_path / "package.tar", manifest(), store=Corrupt()), PROVIDER.public_key())
    assert report.ok, report.problems
    assert report.withheld == [{"path": "records/acct-2/south-1/photo.jpg", "reason": "record-integrity", "detail": "record-corrupt"}]


async def test_the_stream_says_which_record_it_withholds_and_why_before_it_goes_on() -> None:
    told: list[tuple[str, str]] = []

    async def on_withheld(record: dict[str, Any], detail: str) -> None:
        told.append((record["path"], detail))

    store = Store({**BODIES, ("acct-1", "north-1", "mail-1"): CHANGED})
    async for _ in stream_package(manifest(), signing_key=PROVIDER, fetch=store.fetch, on_withheld=on_withheld):
        pass
    assert told == [("records/acct-1/north-1/mail-1", "record-changed")]


@pytest.mark.parametrize(
    "changed",
    [
        {("acct-2", "south-1", "empty"): b"x"},
        {("acct-1", "north-1", "login-log"): b"y" * 512},
        {("acct-2", "south-1", "photo.jpg"): b"z"},
        {key: b"changed" for key in BODIES},
        {("acct-3", "north-1", "k" * 128): b"long"},
        {("acct-3", "north-1", "k" * 128): b"long", ("acct-2", "south-1", "empty"): b"x"},
    ],
    ids=["an-empty-record", "one-block", "several-blocks", "every-record", "a-pax-path", "a-pax-path-and-an-empty-record"],
)
async def test_a_package_withholding_records_is_as_long_as_announced_and_verifies(tmp_path: Path, changed: dict[tuple[str, str, str], bytes]) -> None:
    from gateway.packages import manifest_bytes, package_size

    bodies = {**BODIES, ("acct-3", "north-1", "k" * 128): b"a long name"}
    items_ = [PackageItem(s, r, "content", k, hashlib.sha256(b).hexdigest(), len(b), "tag") for (s, r, k), b in bodies.items()]
    manifest_ = build_manifest("order-1", "aa-court", CREATED, items_, key_id(PROVIDER.public_key()))
    path = await produce(tmp_path / "package.tar", manifest_, store=Store({**bodies, **changed}))
    assert path.stat().st_size == package_size(manifest_, len(manifest_bytes(manifest_)))
    report = verify_package(path, PROVIDER.public_key())
    assert (report.ok, report.problems, len(report.withheld)) == (True, [], len(changed))


def _members(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, content in members:
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


async def test_a_record_removed_in_transit_and_named_as_withheld_under_another_key_fails_verification(tmp_path: Path) -> None:
    data = (await produce(tmp_path / "package.tar", manifest())).read_bytes()
    members = [(m, c) for m, c in _members(data) if m.name != "records/acct-1/north-1/mail-1"]
    statement = json.loads(dict((m.name, c) for m, c in members)["withheld.json"])
    statement["records"] = [{"path": "records/acct-1/north-1/mail-1", "reason": "record-integrity", "detail": "record-changed"}]
    forged = canonical(statement)
    forger = ed25519.Ed25519PrivateKey.generate()
    members = [
        (m, forged if m.name == "withheld.json" else b64url(forger.sign(forged)).encode() if m.name == "withheld.sig" else c) for m, c in members
    ]
    (tmp_path / "tampered.tar").write_bytes(_tar(members))
    report = verify_package(tmp_path / "tampered.tar", PROVIDER.public_key())
    assert "withheld.sig does not verify under the provider key" in report.problems and not report.ok


async def test_a_package_whose_withheld_statement_was_dropped_fails_verification(tmp_path: Path) -> None:
    store = Store({**BODIES, ("acct-1", "north-1", "mail-1"): CHANGED})
    data = (await produce(tmp_path / "package.tar", manifest(), store=store)).read_bytes()
    (tmp_path / "dropped.tar").write_bytes(_tar([(m, c) for m, c in _members(data) if not m.name.startswith("withheld.")]))
    report = verify_package(tmp_path / "dropped.tar", PROVIDER.public_key())
    assert "record `records/acct-1/north-1/mail-1` is missing" in report.problems and not report.ok


async def test_the_withheld_statement_of_another_package_does_not_excuse_a_missing_record(tmp_path: Path) -> None:
    store = Store({**BODIES, ("acct-1", "north-1", "mail-1"): CHANGED})
    other = dict((m.name, c) for m, c in _members((await produce(tmp_path / "other.tar", manifest(), store=store)).read_bytes()))
    later = build_manifest("order-1", "aa-court", CREATED.replace(minute=45), items(), key_id(PROVIDER.public_key()))
    data = (await produce(tmp_path / "package.tar", later)).read_bytes()
    members = [(m, other.get(m.name, c) if m.name.startswith("withheld.") else c) for m, c in _members(data) if m.name != "records/acct-1/north-1/mail-1"]
    (tmp_path / "spliced.tar").write_bytes(_tar(members))
    report = verify_package(tmp_path / "spliced.tar", PROVIDER.public_key())
    assert "withheld.json names another manifest" in report.problems and not report.ok


async def test_a_package_made_before_the_withheld_statement_existed_still_verifies(tmp_path: Path) -> None:
    path = await produce(tmp_path / "package.tar", manifest())
    trailer = offsets(path)["withheld.json"].offset  # the records end here: cut the statement off, keep the end blocks
    (tmp_path / "old.tar").write_bytes(path.read_bytes()[:trailer] + b"\0" * 1024)
    report = verify_package(tmp_path / "old.tar", PROVIDER.public_key())
    assert (report.ok, report.records, report.problems) == (True, len(BODIES), [])


async def test_a_withheld_padding_that_holds_other_bytes_than_zeros_fails_verification(tmp_path: Path) -> None:
    store = Store({**BODIES, ("acct-2", "south-1", "photo.jpg"): b"changed"})
    path = await produce(tmp_path / "package.tar", manifest(), store=store)
    padding = offsets(path)["withheld.pad"]
    assert padding.size > 0
    report = verify_package(flipped(path, padding.offset_data + 1, tmp_path / "flipped.tar"), PROVIDER.public_key())
    assert "withheld.pad holds other bytes than zeros" in report.problems


async def test_a_store_returning_fewer_bodies_than_asked_stops_the_stream() -> None:
    async def short(batch: list[dict[str, Any]]) -> list[bytes]:
        return [b""]

    with pytest.raises(PackageError, match="incomplete"):
        async for _ in stream_package(manifest(), signing_key=PROVIDER, fetch=short):
            pass


async def test_the_package_size_is_known_before_the_stream(tmp_path: Path) -> None:
    from gateway.packages import manifest_bytes, package_size

    long_key = "k" * 128  # a pax header for its path
    bodies = {**BODIES, ("acct-3", "north-1", long_key): b"long name"}
    items_ = [
        PackageItem(subject, region, "content", key, hashlib.sha256(body).hexdigest(), len(body), "tag")
        for (subject, region, key), body in bodies.items()
    ]
    manifest_ = build_manifest("order-1", "aa-court", CREATED, items_, key_id(PROVIDER.public_key()))
    path = await produce(tmp_path / "package.tar", manifest_, store=Store(bodies))
    assert package_size(manifest_, len(manifest_bytes(manifest_))) == path.stat().st_size


async def test_a_large_record_is_yielded_as_it_is_not_copied_into_its_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.packages.OWN_CHUNK_BYTES", 2000)
    store = Store()
    photo = store.bodies[("acct-2", "south-1", "photo.jpg")]
    chunks = [chunk async for chunk in stream_package(manifest(), signing_key=PROVIDER, fetch=store.fetch)]
    assert any(chunk is photo for chunk in chunks)


async def test_at_most_a_few_batches_are_read_ahead_however_small_their_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.packages.BATCH_RECORDS", 1)
    monkeypatch.setattr("gateway.packages.BATCHES_AHEAD", 2)
    empties = {("acct-1", "north-1", f"empty-{n:02d}"): b"" for n in range(20)}
    items_ = [PackageItem(s, r, "content", k, hashlib.sha256(b"").hexdigest(), 0, "tag") for s, r, k in empties]
    store = Store(empties)
    stream = stream_package(build_manifest("order-1", "aa-court", CREATED, items_, "provider"), signing_key=PROVIDER, fetch=store.fetch)
    await anext(stream)  # manifest.json
    await anext(stream)  # manifest.sig, while the first batches are read
    assert len(store.batches) <= 2
    await stream.aclose()  # type: ignore[attr-defined]


def test_a_missing_member_fails_verification(package: Path) -> None:
    member = offsets(package)["records/acct-1/north-1/mail-1"]
    end = member.offset_data + member.size + (-member.size % 512)
    data = package.read_bytes()
    package.write_bytes(data[: member.offset] + data[end:])
    report = verify_package(package, PROVIDER.public_key())
    assert not report.ok
    assert "record `records/acct-1/north-1/mail-1` is missing" in report.problems


def test_an_extra_member_fails_verification(package: Path) -> None:
    data = package.read_bytes()[:-1024]
    extra = tarfile.TarInfo("records/acct-9/north-1/planted")
    extra.size = 3
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(extra, io.BytesIO(b"bad"))
    package.write_bytes(data + buffer.getvalue())
    report = verify_package(package, PROVIDER.public_key())
    assert "unexpected member `records/acct-9/north-1/planted`" in report.problems


async def test_a_package_signed_by_another_key_fails_verification(tmp_path: Path) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    path = await produce(tmp_path / "package.tar", manifest(other), key=other)
    report = verify_package(path, PROVIDER.public_key())
    assert not report.ok
    assert "manifest.sig does not verify under the provider key" in report.problems


def test_a_file_that_is_not_a_tar_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "package.tar"
    path.write_bytes(b"not a tar at all")
    report = verify_package(path, PROVIDER.public_key())
    assert (report.ok, report.order, report.records) == (False, None, 0)


async def test_the_stream_fetches_records_in_manifest_order_while_reading_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.packages.BATCH_RECORDS", 1)
    store = Store()
    async for _ in stream_package(manifest(), signing_key=PROVIDER, fetch=store.fetch):
        pass
    fetched = [e.removeprefix("fetch ") for e in store.events if e.startswith("fetch ")]
    assert fetched == [r["path"] for r in manifest()["records"]]
    assert store.most_in_flight > 1


async def test_small_records_are_fetched_together_in_one_batch() -> None:
    store = Store()
    async for _ in stream_package(manifest(), signing_key=PROVIDER, fetch=store.fetch):
        pass
    assert store.batches == [[r["path"] for r in manifest()["records"]]]


@pytest.mark.parametrize(("records", "size"), [(2, 1 << 30), (4, 600)])
async def test_a_batch_holds_at_most_its_records_and_bytes(monkeypatch: pytest.MonkeyPatch, records: int, size: int) -> None:
    monkeypatch.setattr("gateway.packages.BATCH_RECORDS", records)
    monkeypatch.setattr("gateway.packages.BATCH_BYTES", size)
    store = Store()
    async for _ in stream_package(manifest(), signing_key=PROVIDER, fetch=store.fetch):
        pass
    sizes = {r["path"]: r["size"] for r in manifest()["records"]}
    assert [path for batch in store.batches for path in batch] == list(sizes)
    for batch in store.batches:
        assert len(batch) <= records
        assert len(batch) == 1 or sum(sizes[path] for path in batch) <= size


async def test_the_read_ahead_stays_within_its_byte_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.packages.READ_AHEAD_BYTES", 1)  # smaller than any record: one batch at a time
    monkeypatch.setattr("gateway.packages.BATCH_RECORDS", 1)
    store = Store()
    events = store.events
    async for chunk in stream_package(manifest(), signing_key=PROVIDER, fetch=store.fetch):
        for (subject, region, key), body in BODIES.items():
            if body and body in chunk:
                events.append(f"sent records/{subject}/{region}/{key}")
    assert store.most_in_flight == 1
    fetched = [e.removeprefix("fetch ") for e in events if e.startswith("fetch ")]
    # no record is fetched before the previous record's bytes went out
    for earlier, later in itertools.pairwise(fetched):
        sent = f"sent {earlier}"
        if sent in events:
            assert events.index(sent) < events.index(f"fetch {later}")


async def test_nothing_is_fetched_until_the_manifest_has_been_consumed() -> None:
    store = Store()
    stream = stream_package(manifest(), signing_key=PROVIDER, fetch=store.fetch)
    await anext(stream)  # manifest.json
    assert store.events == []
    await anext(stream)  # manifest.sig: the first records are read while it is signed
    assert store.events[0] == f"fetch {manifest()['records'][0]['path']}"
    await stream.aclose()  # type: ignore[attr-defined]


def test_the_manifest_lists_records_by_path_with_their_hashes() -> None:
    records = manifest()["records"]
    assert [r["path"] for r in records] == sorted(f"records/{s}/{r}/{k}" for s, r, k in BODIES)
    assert {r["path"]: (r["sha256"], r["size"]) for r in records} == {
        f"records/{s}/{r}/{k}": (hashlib.sha256(b).hexdigest(), len(b)) for (s, r, k), b in BODIES.items()
    }


async def test_a_record_with_a_path_longer_than_ustar_allows_travels_in_a_pax_header(tmp_path: Path) -> None:
    path = await long_path_package(tmp_path / "package.tar")
    pax_header = offsets(path)[LONG_PATH].offset  # tarfile reports the pax header's offset
    assert path.read_bytes()[pax_header + 156 : pax_header + 157] == tarfile.XHDTYPE
    assert verify_package(path, PROVIDER.public_key()).ok


def test_a_record_key_that_is_not_an_identifier_cannot_enter_a_manifest() -> None:
    bad = PackageItem("acct-1", "north-1", "content", "../../etc/passwd", "0" * 64, 1, "tag")
    with pytest.raises(PackageError):
        build_manifest("order-1", "aa-court", CREATED, [bad], key_id(PROVIDER.public_key()))


@pytest.mark.parametrize(
    "bad",
    [
        PackageItem("acct-1", "north-1", "content", "mail-1", "0" * 64, 2**53, "tag"),
        PackageItem("acct-1", "north-1", "content", "mail-1", "0" * 64, 1, 7),  # type: ignore[arg-type]
        PackageItem("acct-1", "north-1", 1.5, "mail-1", "0" * 64, 1, "tag"),  # type: ignore[arg-type]
    ],
    ids=["size-beyond-json-integers", "tag-not-a-string", "category-not-a-string"],
)
def test_a_record_whose_values_json_cannot_carry_exactly_cannot_enter_a_manifest(bad: PackageItem) -> None:
    with pytest.raises(PackageError) as caught:
        build_manifest("order-1", "aa-court", CREATED, [bad], key_id(PROVIDER.public_key()))
    assert caught.value.code == "package-invalid"


@pytest.mark.parametrize("field", ["subject", "region", "key"])
def test_a_path_segment_that_is_not_text_cannot_enter_a_manifest(field: str) -> None:
    values = {"subject": "acct-1", "region": "north-1", "key": "mail-1", field: ["not", "text"]}
    bad = PackageItem(values["subject"], values["region"], "content", values["key"], "0" * 64, 1, "tag")  # type: ignore[arg-type]
    with pytest.raises(PackageError) as caught:
        build_manifest("order-1", "aa-court", CREATED, [bad], "provider")
    assert caught.value.code == "package-invalid"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40), st.integers(min_value=0, max_value=2**53 - 1)), min_size=1, max_size=5))
def test_the_manifest_encoding_is_rfc_8785(records: list[tuple[str, str, int]]) -> None:
    import rfc8785

    from gateway.packages import manifest_bytes

    items_ = [PackageItem("acct-1", "north-1", category, f"k{n}", "0" * 64, size, tag) for n, (category, tag, size) in enumerate(records)]
    manifest_ = build_manifest("order-1", "aa-court", CREATED, items_, "provider")
    assert manifest_bytes(manifest_) == rfc8785.dumps(manifest_)


@settings(max_examples=300, deadline=None)
@given(
    name=st.one_of(st.text(min_size=1, max_size=120), st.from_regex(r"records/[a-z0-9-]{1,40}/[a-z0-9-]{1,20}/[A-Za-z0-9._-]{1,60}", fullmatch=True)),
    size=st.one_of(st.integers(min_value=0, max_value=2**40), st.sampled_from([0, 1, 511, 512, 8**11 - 1, 8**11])),
    mtime=st.one_of(st.integers(min_value=-(2**35), max_value=2**35), st.sampled_from([-1, 0, 8**11 - 1, 8**11])),
)
def test_every_member_header_is_the_one_tarfile_writes(name: str, size: int, mtime: int) -> None:
    from gateway.packages import _header, _tar_header

    assert _header(name, size, mtime) == _tar_header(name, size, mtime)


def test_a_path_segment_that_only_compares_equal_to_text_cannot_enter_a_manifest() -> None:
    known = PackageItem("acct-1", "north-1", "content", "mail-1", "0" * 64, 1, "tag")
    lookalike = PackageItem(UserString("acct-1"), "north-1", "content", "mail-1", "0" * 64, 1, "tag")  # type: ignore[arg-type]
    with pytest.raises(PackageError) as caught:
        build_manifest("order-1", "aa-court", CREATED, [known, lookalike], "provider")
    assert caught.value.code == "package-invalid"
