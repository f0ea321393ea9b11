"""Counting the transparency report from ledger entries (pure)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from gateway.reports.render import render
from gateway.reports.transparency import build_report, classify, parse_range

YEAR = (date(2026, 1, 1), date(2026, 12, 31))


def decided(time: str, issuer: str, *items: dict[str, Any], preservation: bool = False, emergency: bool = False) -> dict[str, Any]:
    data = {"issuer_jurisdiction": issuer, "preservation": preservation, "emergency": emergency, "items": list(items)}
    return {"kind": "order.decided", "time": time, "data": data}


def item(outcome: str, category: str = "content", stored: str = "US", subject: str = "s1", notify: str | None = None) -> dict[str, Any]:
    return {"subject": subject, "outcome": outcome, "category": category, "data_jurisdiction": stored, "notify": notify}


def test_orders_fall_in_the_half_year_they_were_decided_in() -> None:
    report = build_report([decided("2026-06-30T23:59:59Z", "US", item("disclose")), decided("2026-07-01T00:00:00Z", "US", item("disclose"))], *YEAR)
    assert [(r.period, r.requests) for r in report.rows] == [("2026-H1", 1), ("2026-H2", 1)]


def test_a_preservation_order_adds_to_preservation_only() -> None:
    report = build_report([decided("2026-08-01T00:00:00Z", "US", item("preserve"), preservation=True)], *YEAR)
    (row,) = report.rows
    assert (row.preservation, row.requests, row.accounts, report.total.requests) == (1, 0, 0, 0)


def test_any_content_disclosed_makes_a_content_request_even_beside_refusals() -> None:
    assert classify([item("refuse"), item("disclose", "content")]) == "content"


def test_non_content_disclosed_alone_makes_a_non_content_request() -> None:
    assert classify([item("disclose", "subscriber"), item("refuse", "content")]) == "non_content"


def test_no_data_beside_refusals_is_no_data_and_refusals_alone_are_rejected() -> None:
    assert (classify([item("no-data"), item("refuse")]), classify([item("refuse")]), classify([])) == ("no_data", "rejected", "rejected")


def test_accounts_count_distinct_subjects_per_request() -> None:
    items = [item("disclose", subject="a"), item("refuse", "traffic", subject="a"), item("refuse", subject="b")]
    report = build_report([decided("2026-08-01T00:00:00Z", "US", *items)], *YEAR)
    assert report.rows[0].accounts == 2


def test_eu_notifications_count_each_notified_state_once_per_request() -> None:
    entries = [decided("2026-08-01T00:00:00Z", "FR", item("hold", "traffic", "IE", notify="IE"), item("hold", "content", "IE", notify="IE"))]
    assert build_report(entries, *YEAR).rows[0].eu_notifications == 1


def test_entries_outside_the_period_and_other_kinds_are_ignored() -> None:
    entries = [decided("2025-12-31T23:00:00Z", "US", item("disclose")), {"kind": "service.read", "time": "2026-08-01T00:00:00Z", "data": {}}]
    assert build_report(entries, *YEAR).rows == ()


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="before"):
        parse_range("2026-12-31", "2026-01-01")


def test_an_empty_report_renders_in_every_format() -> None:
    report = build_report([], *YEAR)
    assert "No requests were decided" in render(report, "html")
    assert render(report, "csv").splitlines()[-1].startswith("all,total,0")
    assert '"rows": []' in render(report, "json")


def _review_ledger(*endings: str) -> list[dict]:
    entries = [
        {
            "kind": "order.decided",
            "time": "2026-10-01T00:00:00Z",
            "data": {
                "order": f"o{i}",
                "authority": "us-court",
                "issuer_jurisdiction": "US",
                "items": [{"subject": "s", "region": "eu-west-1", "data_jurisdiction": "IE", "category": "content", "outcome": "legal-review"}],
            },
        }
        for i in range(len(endings))
    ]
    for i, ending in enumerate(endings):
        entries.append({"kind": "case.opened", "time": "2026-10-01T00:00:00Z", "data": {"case": f"c{i}", "order": f"o{i}", "authority": "us-court"}})
        if ending:
            entries.append({"kind": f"case.{ending}", "time": "2026-10-02T00:00:00Z", "data": {"case": f"c{i}", "order": f"o{i}"}})
    return entries


def test_legal_review_requests_are_split_into_open_approved_and_denied() -> None:
    from datetime import date

    from gateway.reports.transparency import build_report

    report = build_report(_review_ledger("", "approved", "denied", "expired"), date(2026, 7, 1), date(2026, 12, 31))
    total = report.total
    assert (total.legal_review, total.review_open, total.review_approved, total.review_denied) == (4, 1, 1, 2)


def lockbox_opened(case: str = "case-1") -> dict[str, Any]:
    """A support-access case as `CaseService.open_support_request` records it: no authority, no order."""
    data = {"case": case, "kind": "lockbox", "by": "sam", "subject": "s", "region": "us-east-1", "deadline": "2026-10-01T21:00:00Z"}
    return {"seq": 3, "kind": "case.opened", "time": "2026-10-01T09:00:00Z", "data": data}


def test_a_support_access_case_and_its_ending_are_not_counted() -> None:
    ending = {"seq": 4, "kind": "case.denied", "time": "2026-10-01T10:00:00Z", "data": {"case": "case-1", "order": None, "by": "lena"}}
    report = build_report([lockbox_opened(), ending], *YEAR)
    assert (report.rows, report.skipped) == ((), ())


def test_a_decided_order_missing_its_items_is_skipped_and_named() -> None:
    broken = {"seq": 7, "kind": "order.decided", "time": "2026-08-01T00:00:00Z", "data": {"issuer_jurisdiction": "US"}}
    report = build_report([broken, decided("2026-08-01T00:00:00Z", "US", item("disclose"))], *YEAR)
    assert report.total.requests == 1
    assert [(s.seq, s.kind, s.problem) for s in report.skipped] == [(7, "order.decided", "`items` is missing or not a list")]


def test_an_entry_whose_time_is_not_a_time_is_skipped() -> None:
    report = build_report([{"seq": 2, "kind": "order.rejected", "time": "yesterday", "data": {}}], *YEAR)
    assert report.rows == () and [s.problem for s in report.skipped] == ["`time` is not an RFC 3339 time"]


def test_a_legal_case_opened_without_its_order_is_skipped() -> None:
    opened = {"seq": 5, "kind": "case.opened", "time": "2026-10-01T00:00:00Z", "data": {"case": "c", "kind": "legal-review", "authority": "us-court"}}
    assert [s.problem for s in build_report([opened], *YEAR).skipped] == ["`order` is missing"]


def test_a_decided_order_that_names_no_issuing_country_is_unattributed() -> None:
    entry = decided("2026-08-01T00:00:00Z", "US", item("disclose"))
    del entry["data"]["issuer_jurisdiction"]
    (row,) = build_report([entry], *YEAR).rows
    assert (row.country, row.requests, row.content, row.accounts) == (None, 1, 1, 1)


def test_skipped_entries_are_shown_in_every_format() -> None:
    report = build_report([{"seq": 9, "kind": "order.decided", "time": "2026-08-01T00:00:00Z", "data": []}], *YEAR)
    assert render(report, "csv").splitlines()[-1].endswith(",1")
    assert '"entries": 1' in render(report, "json")
    assert "1 entry of the audit ledger that this report reads could not be read" in render(report, "html")


def test_an_entry_skipped_for_any_of_its_fields_is_counted_nowhere() -> None:
    entry = decided("2026-08-01T00:00:00Z", "US", item("legal-review"))
    entry["data"]["authority"] = 5
    report = build_report([entry], *YEAR)
    assert (report.rows, [s.problem for s in report.skipped]) == ((), ["`authority` is not text"])


def test_write_intents_and_their_reconciliation_leave_the_report_as_it_is() -> None:
    orders = [decided("2026-08-01T00:00:00Z", "US", item("disclose"))]
    noise = [
        {"kind": "record.write-intent", "time": "2026-08-01T00:00:01Z", "data": {"subject": "s1", "key": "k", "region": "us-east-1", "object": "o"}},
        {"kind": "record.delete-intent", "time": "2026-08-01T00:00:02Z", "data": {"subject": "s1", "key": "k", "region": "us-east-1", "object": "o"}},
        {"kind": "record.write-failed", "time": "2026-08-01T00:00:03Z", "data": {"intent": 2, "code": "store-unavailable"}},
        {"kind": "record.reconciled", "time": "2026-08-01T00:00:04Z", "data": {"intent": 1, "object": "o", "region": "us-east-1", "result": "written"}},
    ]
    assert build_report(orders + noise, *YEAR) == build_report(orders, *YEAR)


def test_an_order_whose_items_peer_gateways_all_decided_is_left_to_their_reports() -> None:
    forwarded = decided("2026-08-01T00:00:00Z", "US")
    forwarded["data"]["peers"] = ["europe"]
    report = build_report([forwarded, decided("2026-08-02T00:00:00Z", "US", item("disclose"))], *YEAR)
    assert (report.total.requests, report.total.rejected) == (1, 0)
