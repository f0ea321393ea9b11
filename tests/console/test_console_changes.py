"""The console's "what changes" page: a candidate policy decided against the running one, in a bounded child process.

Each analysis that runs decides the whole decision space twice (some seconds).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gateway.services.analysis import MAX_CANDIDATE_BYTES
from gateway.web.app import create_app
from gateway.web.console import CSRF_FIELD
from gateway.web.state import STATE_KEY
from tests.console.support import HOLD, console_as, csrf_from, legal_token, submitted
from tests.orders_support import ledger_entries, prepare_authorities
from tests.support import SHIPPED_CONFIG, Env

EPOC_START = "in_force_from = 2026-08-18"


def shipped() -> str:
    return SHIPPED_CONFIG.read_text(encoding="utf-8")


def epoc_later() -> str:
    """The shipped policy with the EU e-evidence regime in force a year later (after the decision cases' dates)."""
    text = shipped()
    assert text.count(EPOC_START) == 3
    return text.replace(EPOC_START, "in_force_from = 2027-08-18")


def us_content_unbarred() -> str:
    """The shipped policy without the US foreign-content bar, with voluntary disclosure to foreign authorities raised to content."""
    text = shipped()
    bar = text.split("[blocking.us-foreign-content-bar]")[1].split("[blocking.")[0]
    voluntary = 'id = "us-non-content-to-foreign-authorities"\nto = "foreign"\nstored_in = ["US"]\nup_to = "traffic"'
    assert text.count(voluntary) == 1
    return text.replace("[blocking.us-foreign-content-bar]" + bar, "").replace(voluntary, voluntary.replace('"traffic"', '"content"'))


async def analyse(client: TestClient, csrf: str, candidate: str) -> tuple[int, str]:
    response = await client.post("/console/changes", data={CSRF_FIELD: csrf, "candidate": candidate})
    return response.status, await response.text()


def analysed(env: Env) -> list[dict]:
    return [e["data"] for e in ledger_entries(env, "policy.analysed")]


async def test_the_page_lists_a_candidates_changes_grouped_and_counted_with_an_example_case(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    status, html = await analyse(client, csrf, epoc_later())
    assert status == 200
    summary = re.search(r"<strong>(\d+)</strong> of (\d+) decision points change, in <strong>(\d+)</strong> groups", html)
    assert summary and int(summary.group(1)) > 0 and int(summary.group(3)) > 0
    assert "regime-not-in-force" in html and "eu.epoc" in html
    assert "[[case]]" in html and "[case.expect]" in html  # an example decision case to copy


async def test_an_identical_candidate_shows_no_change(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    status, html = await analyse(client, csrf, shipped())
    assert status == 200 and "<strong>No change</strong>" in html


async def test_each_invariant_of_a_candidate_that_keeps_them_is_shown_holding(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    status, html = await analyse(client, csrf, epoc_later())
    assert status == 200 and re.search(r"All (\d+) invariants hold over \d+ decision points of the candidate", html)
    section = html.split('id="invariants-title"', 1)[1].split("</section>", 1)[0]
    assert section.count('<span class="badge approved">holds</span>') == len(client.app[STATE_KEY].rt.config.legal.invariants) > 0
    assert "violated" not in section


async def test_a_violated_invariant_is_shown_with_counterexamples_as_decision_cases(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    status, html = await analyse(client, csrf, us_content_unbarred())
    assert status == 200
    row = html.split('id="invariant-us-content-only-through-an-agreement"', 1)[1].split("</tr>", 1)[0]
    assert '<span class="badge denied">violated</span>' in row
    case = row.split('<pre class="case">', 1)[1].split("</pre>", 1)[0]
    assert "[[case]]" in case and "stored = &#34;us-east-1&#34;" in case and "category = &#34;content&#34;" in case
    assert analysed(env)[0]["invariants_violated"] >= 1


async def test_a_candidate_uploaded_as_a_file_is_read_from_the_file(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    form = aiohttp.FormData()
    form.add_field(CSRF_FIELD, csrf)
    form.add_field("candidate", shipped())  # the upload wins over the pasted text
    form.add_field("file", io.BytesIO(shipped().replace('reaches = "content"', 'reaches = "everything"', 1).encode()), filename="regions.toml")
    response = await client.post("/console/changes", data=form)
    assert response.status == 422 and re.search(r"<code>instruments\.[^<]*\.reaches</code>", await response.text())


async def test_an_invalid_candidate_shows_the_checks_findings_with_their_key_paths_and_compares_nothing(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    broken = shipped().replace('reaches = "content"', 'reaches = "everything"', 1)
    status, html = await analyse(client, csrf, broken)
    assert status == 422 and "config-invalid" in html
    assert re.search(r"<code>instruments\.[^<]*\.reaches</code>", html)
    assert "decision points" not in html
    assert analysed(env)[0]["result"] == "invalid"


async def test_a_candidate_that_is_not_toml_says_so(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    status, html = await analyse(client, csrf, "[instruments\nname = ")
    assert status == 422 and "is not valid TOML" in html


async def test_the_running_policy_decides_as_before_after_a_candidate_that_changes_it_was_analysed(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    status, html = await analyse(client, csrf, epoc_later())
    assert status == 200 and "regime-not-in-force" in html
    _, _, item = await submitted(client, env, HOLD)  # an EPOC the candidate would refuse as not yet in force
    assert item["outcome"] == "hold"
    assert client.app[STATE_KEY].rt.config.legal.instruments["eu.epoc"].in_force_from.year == 2026


async def test_the_analysis_is_ledgered_with_who_ran_it_the_candidates_hash_and_the_change_count(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    candidate = epoc_later()
    status, html = await analyse(client, csrf, candidate)
    assert status == 200
    [entry] = analysed(env)
    changed = int(re.search(r"<strong>(\d+)</strong> of \d+ decision points change", html).group(1))  # type: ignore[union-attr]
    assert entry["principal"] == "alice" and entry["result"] == "changes" and entry["changed"] == changed
    assert entry["candidate_sha256"] == hashlib.sha256(candidate.encode()).hexdigest()
    assert entry["running_digest"] == client.app[STATE_KEY].rt.config.digest


@pytest.mark.parametrize("csrf", [None, "0" * 64], ids=["missing", "wrong"])
async def test_the_form_without_the_right_csrf_token_is_forbidden_and_nothing_is_analysed(client: TestClient, env: Env, csrf: str | None) -> None:
    await console_as(client, env, "alice")
    response = await client.post("/console/changes", data={"candidate": epoc_later(), **({CSRF_FIELD: csrf} if csrf else {})})
    assert response.status == 403 and "csrf-invalid" in await response.text()
    assert analysed(env) == []


async def test_a_candidate_over_two_mib_is_refused_with_413_and_nothing_is_analysed(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    form = aiohttp.FormData()
    form.add_field(CSRF_FIELD, csrf)
    form.add_field("file", io.BytesIO(shipped().encode() + b"#" * MAX_CANDIDATE_BYTES), filename="regions.toml")
    response = await client.post("/console/changes", data=form)
    assert response.status == 413 and "payload-too-large" in await response.text()
    assert analysed(env) == []


async def test_an_empty_form_asks_for_a_candidate(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    status, html = await analyse(client, csrf, "  \n")
    assert status == 400 and "paste a candidate" in html


async def test_a_second_analysis_from_the_same_session_while_one_runs_is_refused_with_409(client: TestClient, env: Env) -> None:
    csrf = await console_as(client, env, "alice")
    analysis = client.app[STATE_KEY].rt.analysis
    first = asyncio.create_task(analyse(client, csrf, epoc_later()))
    while not analysis.sessions:  # the first has started
        await asyncio.sleep(0.01)
    status, html = await analyse(client, csrf, epoc_later())
    assert status == 409 and "analysis-running" in html
    assert (await first)[0] == 200
    assert [e["result"] for e in analysed(env)] == ["changes"]


async def test_an_analysis_from_another_session_while_one_runs_is_refused_with_503_busy(client: TestClient, env: Env) -> None:
    alices = await console_as(client, env, "alice")
    analysis = client.app[STATE_KEY].rt.analysis
    first = asyncio.create_task(analyse(client, alices, epoc_later()))
    while not analysis.sessions:  # alice's has started
        await asyncio.sleep(0.01)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as bob:
        login = await bob.get(client.make_url("/console/login"))
        signed_in = await bob.post(client.make_url("/console/login"), data={"token": legal_token(env, "bob"), CSRF_FIELD: csrf_from(await login.text())})
        bobs = csrf_from(await signed_in.text())
        response = await bob.post(client.make_url("/console/changes"), data={CSRF_FIELD: bobs, "candidate": epoc_later()})
        assert response.status == 503 and "analysis-busy" in await response.text()
    assert (await first)[0] == 200
    assert [e["principal"] for e in analysed(env)] == ["alice"]


async def test_an_analysis_past_its_time_bound_is_stopped_and_says_so(env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> None:
    prepare_authorities(env)
    client = await aiohttp_client(create_app(replace(env.settings, analysis_seconds=0.01), registry=CollectorRegistry()))
    csrf = await console_as(client, env, "alice")
    status, html = await analyse(client, csrf, epoc_later())
    assert status == 503 and "analysis-timed-out" in html
    assert analysed(env) == []
