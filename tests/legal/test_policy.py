"""The legal policy schema: every kind of bad input is a finding at its key path."""

from __future__ import annotations

from typing import Any

from gateway.errors import Finding
from gateway.legal.policy import TABLES

from . import SHIPPED, parse, shipped_policy, shipped_raw


def findings_for(raw: dict[str, Any]) -> list[Finding]:
    return parse(raw)[1]


def paths(findings: list[Finding]) -> dict[str, str]:
    return {f.path: f.message for f in findings}


# --- the shipped file ---------------------------------------------------------------


def test_the_shipped_regions_toml_parses_with_no_findings() -> None:
    policy, findings = parse(shipped_raw())
    assert findings == []
    assert policy.instruments and policy.authorities and policy.agreements and policy.blocking


def test_tables_lists_exactly_the_legal_top_level_keys_of_the_shipped_file() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    legal_part = text[text.index("# ---- legal policy ----") :]
    top_level = {line.strip("[]").split(".")[0] for line in legal_part.splitlines() if line.startswith("[") and not line.startswith("[[")} | {
        line.strip("[]").split(".")[0] for line in legal_part.splitlines() if line.startswith("[[")
    }
    assert top_level == set(TABLES)


def test_bloc_ids_expand_to_their_members_and_except_marks_the_parties_not_bound() -> None:
    epoc = shipped_policy().instruments["eu.epoc"]
    assert {"FR", "DE", "IE", "DK"} <= epoc.issuers
    assert "US" not in epoc.issuers and "NO" not in epoc.issuers
    assert epoc.not_bound == frozenset({"DK"})


def test_templates_make_one_instrument_per_jurisdiction_issued_only_by_it() -> None:
    instruments = shipped_policy().instruments
    assert instruments["br.court-order"].issuers == frozenset({"BR"})
    assert instruments["ie.police-request"].compels == "nothing"
    assert instruments["ie.police-request"].template == "police-request"


def test_a_template_can_leave_a_jurisdiction_out() -> None:
    raw = shipped_raw()
    raw["instrument_templates"]["court-order"]["not_for"] = ["BR"]
    policy, findings = parse(raw)
    assert findings == []
    assert "br.court-order" not in policy.instruments and "ie.court-order" in policy.instruments


def test_a_template_copy_that_is_also_defined_explicitly_is_a_finding() -> None:
    raw = shipped_raw()
    raw["instruments"]["ie.court-order"] = dict(raw["instruments"]["us.warrant"], issuer_jurisdictions=["IE"])
    assert "instrument `ie.court-order` is defined in `instruments` too" in paths(findings_for(raw))["instrument_templates.court-order"]


# --- unknown keys -------------------------------------------------------------------


def test_an_unknown_key_in_an_instrument_is_reported_with_its_quoted_path() -> None:
    raw = shipped_raw()
    raw["instruments"]["eu.epoc"]["colour"] = "blue"
    assert paths(findings_for(raw)) == {'instruments."eu.epoc".colour': "unknown key"}


def test_unknown_keys_are_reported_in_nested_tables_and_channels() -> None:
    raw = shipped_raw()
    raw["instruments"]["us.preservation"]["preservation"]["ttl_hours"] = 5
    raw["agreements"]["uk-us"]["channels"][0]["targeting"]["not_resident_in"] = ["GB"]
    raw["disclosure"]["emergency"]["domestik"] = "disclose"
    raw["authorities"]["us-fbi"]["email"] = "x@example.org"
    assert set(paths(findings_for(raw))) == {
        'instruments."us.preservation".preservation.ttl_hours',
        "agreements.uk-us.channels[0].targeting.not_resident_in",
        "disclosure.emergency.domestik",
        "authorities.us-fbi.email",
    }


# --- references ----------------------------------------------------------------------


def test_an_unknown_jurisdiction_in_an_agreement_channel_names_the_list_index() -> None:
    raw = shipped_raw()
    raw["agreements"]["uk-us"]["channels"][1]["stored_in"] = ["GB", "XX"]
    assert paths(findings_for(raw)) == {"agreements.uk-us.channels[1].stored_in[1]": "unknown jurisdiction, bloc or region `XX`"}


def test_a_region_id_is_accepted_where_a_storage_place_is_asked_for() -> None:
    raw = shipped_raw()
    raw["agreements"]["uk-us"]["channels"][1]["stored_in"] = ["eu-west-2"]
    policy, findings = parse(raw)
    assert findings == []
    assert policy.agreements["uk-us"].channels[1].stored_in == frozenset({"eu-west-2"})


def test_a_channel_storage_place_outside_the_agreement_parties_is_a_finding() -> None:
    raw = shipped_raw()
    raw["agreements"]["uk-us"]["channels"][0]["stored_in"] = ["US", "AU"]
    assert paths(findings_for(raw)) == {"agreements.uk-us.channels[0].stored_in": "`AU` not among the agreement's `parties`"}


def test_a_channel_for_data_stored_anywhere_covers_every_jurisdiction() -> None:
    policy = shipped_policy()
    channel = policy.agreements["eu-e-evidence"].channels[0]
    assert {"US", "GB", "AU", "IE"} <= channel.stored_in
    assert not policy.agreements["eu-e-evidence"].binds("US")


def test_a_motion_to_quash_window_without_its_categories_is_a_finding() -> None:
    raw = shipped_raw()
    del raw["agreements"]["uk-us"]["channels"][1]["motion_to_quash_categories"]
    assert paths(findings_for(raw)) == {
        "agreements.uk-us.channels[1].motion_to_quash_categories": "is required with `motion_to_quash_days`: the categories whose orders may be quashed"
    }


def test_the_motion_to_quash_window_of_the_shipped_agreements_covers_content_only() -> None:
    policy = shipped_policy()
    restricting = [c for a in policy.agreements.values() for c in a.channels if c.motion_to_quash_days is not None]
    assert restricting and all(c.motion_to_quash_categories == frozenset({"content"}) for c in restricting)


def test_the_us_reverse_channels_restrict_no_targeting() -> None:
    policy = shipped_policy()
    for agreement in ("uk-us", "au-us"):
        reverse = [c for c in policy.agreements[agreement].channels if c.effect == "restrict"]
        assert reverse and all(c.targeting is None for c in reverse)


def test_a_domestic_emergency_rule_without_its_storage_places_is_a_finding() -> None:
    raw = shipped_raw()
    del raw["disclosure"]["emergency"]["domestic_in"]
    assert paths(findings_for(raw)) == {
        "disclosure.emergency.domestic_in": "is required with `domestic`: the storage places whose own authorities it decides for"
    }


def test_listed_offences_qualify_only_beside_a_minimum_penalty() -> None:
    raw = shipped_raw()
    raw["instruments"]["gb.opo"]["offence"]["listed_qualifies"] = True
    assert paths(findings_for(raw)) == {
        'instruments."gb.opo".offence.listed_qualifies': "only applies with `min_max_penalty_years`: a listed offence meets that threshold"
    }


def test_an_unknown_category_is_a_finding() -> None:
    raw = shipped_raw()
    raw["instruments"]["us.warrant"]["reaches"] = "contnet"
    assert paths(findings_for(raw)) == {'instruments."us.warrant".reaches': "unknown category `contnet`"}


def test_an_unknown_instrument_in_designated_for_is_a_finding() -> None:
    raw = shipped_raw()
    raw["authorities"]["gb-sos"]["designated_for"] = ["gb.opo", "gb.op0"]
    assert paths(findings_for(raw)) == {"authorities.gb-sos.designated_for[1]": "unknown instrument `gb.op0`"}


def test_an_unknown_instrument_in_a_channel_is_a_finding() -> None:
    raw = shipped_raw()
    raw["agreements"]["au-us"]["channels"][0]["instruments"] = ["au.ipo2"]
    assert paths(findings_for(raw)) == {"agreements.au-us.channels[0].instruments[0]": "unknown instrument `au.ipo2`"}


def test_an_unknown_authority_kind_lists_the_vocabulary() -> None:
    raw = shipped_raw()
    raw["authorities"]["us-fbi"]["kind"] = "sheriff"
    message = paths(findings_for(raw))["authorities.us-fbi.kind"]
    assert message.startswith("unknown value `sheriff`; use `court`")


def test_an_unknown_jurisdiction_of_an_authority_is_a_finding() -> None:
    raw = shipped_raw()
    raw["authorities"]["us-fbi"]["jurisdiction"] = "XX"
    assert paths(findings_for(raw)) == {"authorities.us-fbi.jurisdiction": "unknown jurisdiction `XX`"}


def test_a_date_that_does_not_parse_is_a_finding() -> None:
    raw = shipped_raw()
    raw["instruments"]["eu.epoc"]["in_force_from"] = "18 August 2026"
    assert paths(findings_for(raw)) == {'instruments."eu.epoc".in_force_from': "`18 August 2026` is not a date (write e.g. 2026-08-18)"}


def test_numbers_must_be_positive() -> None:
    raw = shipped_raw()
    raw["instruments"]["us.preservation"]["preservation"]["ttl_days"] = 0
    raw["agreements"]["uk-us"]["channels"][0]["min_max_penalty_years"] = -3
    raw["disclosure"]["review_days"] = "ten"
    assert paths(findings_for(raw)) == {
        'instruments."us.preservation".preservation.ttl_days': "must be a positive number, not `0`",
        "agreements.uk-us.channels[0].min_max_penalty_years": "must be a positive number, not `-3`",
        "disclosure.review_days": "must be a whole number",
    }


def test_an_instrument_needs_either_reaches_or_preservation_but_not_both() -> None:
    raw = shipped_raw()
    raw["instruments"]["us.preservation"]["reaches"] = "content"
    del raw["instruments"]["us.warrant"]["reaches"]
    found = paths(findings_for(raw))
    assert found['instruments."us.preservation"'] == "give either `reaches` or `preservation`, not both"
    assert found['instruments."us.warrant".reaches'].startswith("is required")


def test_a_competence_cap_for_a_kind_not_listed_is_a_finding() -> None:
    raw = shipped_raw()
    raw["instruments"]["eu.epoc"]["competence"]["police"] = "subscriber"
    assert paths(findings_for(raw)) == {'instruments."eu.epoc".competence.police': "kind `police` is not in `kinds`"}


def test_except_must_name_an_issuer_of_the_instrument() -> None:
    raw = shipped_raw()
    raw["instruments"]["eu.epoc"]["except"] = ["DK", "US"]
    assert paths(findings_for(raw)) == {'instruments."eu.epoc".except[1]': "`US` is not among `issuer_jurisdictions`"}


def test_an_instrument_that_must_go_to_a_foreign_establishment_needs_one_that_receives_it() -> None:
    raw = shipped_raw()
    raw["disclosure"]["establishments"]["exampleco-ireland"]["receives"] = ["eu.epoc"]
    assert paths(findings_for(raw)) == {
        'instruments."eu.epoc-pr".foreign_establishment_required': "no establishment in `disclosure.establishments` receives `eu.epoc-pr`"
    }


def test_two_grant_channels_covering_the_same_order_are_a_finding() -> None:
    raw = shipped_raw()
    raw["agreements"]["uk-us-copy"] = shipped_raw()["agreements"]["uk-us"]
    found = paths(findings_for(raw))
    assert list(found) == ["agreements.uk-us-copy.channels[0]"]
    assert found["agreements.uk-us-copy.channels[0]"].startswith("overlaps `uk-us.channels[0]` for `gb.opo` from `GB`")


def test_a_blocking_reason_must_be_a_kebab_case_code() -> None:
    raw = shipped_raw()
    raw["blocking"]["gdpr-art48"]["reason"] = "GDPR Art. 48"
    assert paths(findings_for(raw)) == {"blocking.gdpr-art48.reason": "`GDPR Art. 48` is not a kebab-case reason code"}


def test_a_voluntary_rule_with_an_unknown_direction_is_a_finding() -> None:
    raw = shipped_raw()
    raw["disclosure"]["voluntary"][0]["to"] = "abroad"
    assert paths(findings_for(raw)) == {"disclosure.voluntary[0].to": "unknown value `abroad`; use `domestic`, `foreign`, `any`"}


def test_a_wrongly_typed_table_is_a_finding_not_a_crash() -> None:
    raw = shipped_raw()
    raw["instruments"]["us.warrant"] = "a warrant"
    raw["agreements"]["uk-us"]["channels"] = "both ways"
    found = paths(findings_for(raw))
    assert found['instruments."us.warrant"'] == "must be a table"
    assert found["agreements.uk-us.channels"].startswith("must list at least one channel")


def test_every_problem_is_reported_at_once() -> None:
    raw = shipped_raw()
    raw["instruments"]["us.warrant"]["reaches"] = "everything"
    raw["instruments"]["us.warrant"]["compels"] = "always"
    raw["authorities"]["gb-sos"]["jurisdiction"] = "UK"
    raw["blocking"]["gdpr-art48"]["stored_in"] = ["EU", "Europe"]
    raw["disclosure"]["person_status_jurisdiction"] = "USA"
    assert len(findings_for(raw)) == 5


def test_a_policy_with_no_instruments_or_authorities_is_a_finding() -> None:
    raw = shipped_raw()
    for table in TABLES:
        raw.pop(table, None)
    assert paths(findings_for(raw)) == {
        "instruments": "must define at least one instrument",
        "authorities": "must register at least one authority",
    }
