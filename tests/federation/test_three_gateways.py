"""Three gateways that own their regions, as real processes, forwarding to each other (see ``tests.federation.support``).

Americas owns us-east-1, Europe eu-west-1, eu-central-1 and eu-west-2,
Asia-Pacific ap-southeast-2. Subjects are registered with their own gateway;
every request here goes through a gateway, with that gateway's own tokens.
A test that kills a gateway starts it again on its folder and port.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.keys import load_private_key
from gateway.legal.verify import sign_order
from tests.federation.support import Answer, Federation, authority_key, call, three_gateways

SUBJECTS = {  # subject: (its gateway, home region, residence, US person)
    "alice": ("americas", "us-east-1", "US", True),
    "aoife": ("europe", "eu-west-1", "IE", False),
    "klaus": ("europe", "eu-central-1", "DE", False),
    "mia": ("apac", "ap-southeast-2", "AU", False),
}
ORDER_SUBJECTS = ["alice", "aoife", "mia"]  # one in each gateway's regions
COMPLETION_WAIT = 60.0  # seconds a pending item may take to be completed once its peer is back (its sweeper runs every second)
_orders = itertools.count(1)
RECORDS = {"profile": "subscriber", "inbox-0001": "content"}


def json_headers(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    with three_gateways(tmp_path_factory.mktemp("federation")) as federation:
        for subject, (gateway, region, residence, us_person) in SUBJECTS.items():
            local = federation.service(gateway, "loader", region)
            facts = f'"residence": "{residence}", "nationality": "{residence}", "us_person": {str(us_person).lower()}'
            body = f'{{"home_region": "{region}", {facts}}}'.encode()
            assert call(f"{federation.url(gateway)}/v1/subjects/{subject}", "PUT", headers=json_headers(local), body=body).status == 201
            for key, category in RECORDS.items():
                url = f"{federation.url(gateway)}/v1/subjects/{subject}/records/{key}?category={category}"
                assert call(url, "PUT", headers=local, body=f"{key} of {subject}".encode()).status == 201
        yield federation


@pytest.fixture
def apac_killed(federation: Federation) -> Iterator[Federation]:
    """Asia-Pacific's gateway SIGKILLed for the test, then started again on its folder and port (unless the test did)."""
    federation.kill("apac")
    try:
        yield federation
    finally:
        if not federation.running("apac"):
            federation.start("apac")


def submit_warrant(federation: Federation, gateway: str = "americas") -> Answer:
    """A US court's warrant for content of one subject in each gateway's regions, submitted to ``gateway``."""
    now = datetime.now(UTC)
    claims = {
        "jti": f"warrant-{next(_orders)}-{int(now.timestamp())}",
        "iss": "us-court-sdny",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(days=30)).timestamp()),
        "instrument": "us.warrant",
        "subjects": ORDER_SUBJECTS,
        "categories": ["content"],
    }
    token = sign_order(claims, key=load_private_key(authority_key(federation, "us-court-sdny")), kid="us-court-sdny")
    intake = {**federation.person(gateway, "intake", "portal"), "Content-Type": "application/jose"}
    return call(f"{federation.url(gateway)}/v1/orders", "POST", headers=intake, body=token.encode())


def decided_by(document: dict) -> dict[str, tuple[str, str | None]]:
    """Each subject's (outcome, the peer that decided it) in a decision document."""
    return {item["subject"]: (item["outcome"], item.get("peer")) for item in document["items"]}


def test_a_read_of_a_european_subject_through_the_americas_gateway_is_served_by_europe(federation: Federation) -> None:
    billing = federation.service("americas", "billing", "us-east-1")
    answer = call(f"{federation.url('americas')}/v1/subjects/aoife/records/profile", headers=billing)
    assert (answer.status, answer.body, answer.headers["X-Residency-Region"], answer.headers["X-Residency-Decision"]) == (
        200,
        b"profile of aoife",
        "eu-west-1",
        "transfer-mechanism",
    )


def test_europes_ledger_has_the_read_and_the_americas_ledger_its_forwarding(federation: Federation) -> None:
    billing = federation.service("americas", "billing", "us-east-1")
    answer = call(f"{federation.url('americas')}/v1/subjects/klaus/records/profile", headers=billing)
    seq = int(answer.headers["X-Audit-Seq"])
    read = next(e for e in federation.entries("europe", "service.read") if e["seq"] == seq)
    forwarded = federation.entries("americas", "federation.forwarded")[-1]["data"]
    assert (read["data"]["subject"], read["data"]["by"]["via"]) == ("klaus", "americas")
    assert {k: forwarded[k] for k in ("peer", "region", "subject", "key", "method", "status", "peer_audit_seq")} == {
        "peer": "europe",
        "region": "eu-central-1",
        "subject": "klaus",
        "key": "profile",
        "method": "GET",
        "status": 200,
        "peer_audit_seq": seq,
    }


def test_a_refusal_decided_by_the_owner_comes_back_as_the_owners_451_with_its_reasons(federation: Federation) -> None:
    analytics = federation.service("americas", "analytics", "us-east-1")
    answer = call(f"{federation.url('americas')}/v1/subjects/aoife/records/profile", headers=analytics)
    problem = answer.json()
    assert (answer.status, problem["code"], problem["reasons"][0]["code"], problem["region"]) == (451, "residency-refused", "service-not-covered", "eu-west-1")
    assert answer.headers["Link"] == '<urn:disclosure-gateway>; rel="blocked-by"'


def test_a_subject_registered_through_the_americas_gateway_lives_in_europe(federation: Federation) -> None:
    billing = federation.service("americas", "billing", "us-east-1")
    body = b'{"home_region": "eu-west-1", "residence": "IE"}'
    assert call(f"{federation.url('americas')}/v1/subjects/sean", "PUT", headers=json_headers(billing), body=body).status == 201
    european = federation.service("europe", "support", "eu-west-1")
    listed = call(f"{federation.url('europe')}/v1/subjects/sean/records", headers=european)
    assert (listed.status, listed.json()["region"]) == (200, "eu-west-1")


def test_a_record_written_through_another_gateway_is_stored_and_tagged_by_its_owner(federation: Federation) -> None:
    sydney = federation.service("apac", "security-operations", "ap-southeast-2", "incident-response")  # group BCR: AU to DE
    written = call(f"{federation.url('apac')}/v1/subjects/klaus/records/note-1?category=subscriber", "PUT", headers=sydney, body=b"g'day")
    frankfurt = federation.service("europe", "support", "eu-central-1")
    read = call(f"{federation.url('europe')}/v1/subjects/klaus/records/note-1", headers=frankfurt)
    assert (written.status, written.json()["tag"]["region"], read.body) == (201, "eu-central-1", b"g'day")


def test_a_dead_gateways_peers_keep_serving_their_own_subjects(apac_killed: Federation) -> None:
    federation = apac_killed
    billing = federation.service("americas", "billing", "us-east-1")
    dublin = federation.service("europe", "support", "eu-west-1")
    statuses = (
        call(f"{federation.url('americas')}/v1/subjects/alice/records/profile", headers=billing).status,
        call(f"{federation.url('europe')}/v1/subjects/aoife/records/profile", headers=dublin).status,
        call(f"{federation.url('americas')}/v1/subjects/aoife/records/profile", headers=billing).status,
    )
    assert statuses == (200, 200, 200)


def test_a_dead_gateways_subjects_get_503_peer_unavailable_from_its_peers(apac_killed: Federation) -> None:
    federation = apac_killed
    answers = [
        call(f"{federation.url(gateway)}/v1/subjects/mia/records/profile", headers=federation.service(gateway, "support", region)).json()
        for gateway, region in (("americas", "us-east-1"), ("europe", "eu-west-1"))
    ]
    assert [(a["status"], a["code"], a["peer"]) for a in answers] == [(503, "peer-unavailable", "apac")] * 2


def test_a_dead_gateways_subjects_are_served_again_once_it_is_back(federation: Federation) -> None:
    federation.kill("apac")
    federation.start("apac")
    security = federation.service("americas", "security-operations", "us-east-1", "incident-response")
    assert call(f"{federation.url('americas')}/v1/subjects/mia/records", headers=security).status == 200



# --- orders -----------------------------------------------------------------------------------


def test_an_order_spanning_three_gateways_is_decided_by_each_owner_and_merged(federation: Federation) -> None:
    answer = submit_warrant(federation)
    assert answer.status == 201
    assert decided_by(answer.json()) == {"alice": ("disclose", None), "aoife": ("legal-review", "europe"), "mia": ("legal-review", "apac")}


def test_each_owner_ledgers_its_part_of_a_merged_order_and_opens_its_own_case(federation: Federation) -> None:
    order = submit_warrant(federation).json()["id"]
    decided = [e["data"] for e in federation.entries("europe", "order.decided") if e["data"]["order"] == order]
    cases = call(f"{federation.url('europe')}/v1/cases?state=open", headers=federation.person("europe", "legal", "lena")).json()["cases"]
    assert [(i["subject"], i["outcome"]) for d in decided for i in d["items"]] == [("aoife", "legal-review")]
    assert [(c["subject"], c["region"]) for c in cases if c["order"] == order] == [("aoife", "eu-west-1")]


def test_a_peers_items_name_where_its_package_part_is_and_copy_none_of_its_records(federation: Federation) -> None:
    document = submit_warrant(federation).json()
    aoife = next(i for i in document["items"] if i["subject"] == "aoife")
    order = document["id"]
    assert (aoife["records"], aoife["peer_package"]) == ([], f"{federation.url('europe')}/v1/orders/{order}/package?authority=us-court-sdny")


def test_with_a_peer_killed_only_its_items_are_pending(apac_killed: Federation) -> None:
    document = submit_warrant(apac_killed).json()
    assert decided_by(document) == {"alice": ("disclose", None), "aoife": ("legal-review", "europe"), "mia": ("pending", "apac")}
    mia = next(i for i in document["items"] if i["subject"] == "mia")
    assert (mia["state"], mia["reasons"][0]["code"]) == ("pending", "peer-unavailable")


def test_a_pending_order_is_completed_once_its_peer_is_back(apac_killed: Federation) -> None:
    federation = apac_killed
    order = submit_warrant(federation).json()["id"]
    federation.start("apac")
    legal = federation.person("americas", "legal", "lena")
    deadline = time.monotonic() + COMPLETION_WAIT
    while True:
        document = call(f"{federation.url('americas')}/v1/orders/{order}", headers=legal).json()
        if decided_by(document)["mia"][0] != "pending" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert decided_by(document) == {"alice": ("disclose", None), "aoife": ("legal-review", "europe"), "mia": ("legal-review", "apac")}
