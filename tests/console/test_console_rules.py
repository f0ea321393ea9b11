"""The rules page: a table of contents, human names with their ids, reasons without raw backticks, policy text escaped."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from gateway.web.app import create_app
from gateway.web.console import codespans
from tests.console.support import console_as
from tests.orders_support import prepare_authorities
from tests.support import SHIPPED_CONFIG, Env, make_env

WARRANT_BASIS = 'legal_basis = "18 U.S.C. §2703(a), (b); Fed. R. Crim. P. 41 (execute by the date in `exp`)"'
HOSTILE_BASIS = 'legal_basis = "Rule <b>41</b> (execute by `<script>alert(1)</script>`)"'


async def rules_page(client: TestClient, env: Env) -> str:
    await console_as(client, env, "alice")
    response = await client.get("/console/rules")
    assert response.status == 200
    return await response.text()


async def test_every_entry_of_the_table_of_contents_links_to_a_section_on_the_page(client: TestClient, env: Env) -> None:
    html = await rules_page(client, env)
    toc = html.split('<nav class="toc', 1)[1].split("</nav>", 1)[0]
    targets = re.findall(r'href="#([^"]+)"', toc)
    assert {"instruments-title", "authorities-title", "agreements-title", "regions-title", "categories-title"} <= set(targets)
    for target in targets:
        assert f'id="{target}"' in html, target


async def test_instruments_are_named_with_their_id_on_hover_and_in_code(client: TestClient, env: Env) -> None:
    html = await rules_page(client, env)
    assert '<span class="named" title="us.warrant">U.S. search warrant</span> <code class="id">us.warrant</code>' in html


async def test_authorities_are_named_with_their_id_on_hover_and_in_code(client: TestClient, env: Env) -> None:
    html = await rules_page(client, env)
    name = "U.S. District Court for the Southern District of New York"
    assert f'<span class="named" title="us-court-sdny">{name}</span> <code class="id">us-court-sdny</code>' in html


async def test_backticked_spans_in_legal_bases_are_code_elements_not_raw_backticks(client: TestClient, env: Env) -> None:
    html = await rules_page(client, env)
    assert "execute by the date in <code>exp</code>" in html
    assert "`exp`" not in html


async def test_markup_in_the_policy_text_is_shown_escaped_never_as_html(tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> None:
    hostile = make_env(tmp_path, SHIPPED_CONFIG.read_text(encoding="utf-8").replace(WARRANT_BASIS, HOSTILE_BASIS))
    prepare_authorities(hostile)
    client = await aiohttp_client(create_app(hostile.settings, registry=CollectorRegistry()))
    html = await rules_page(client, hostile)
    assert "Rule &lt;b&gt;41&lt;/b&gt; (execute by <code>&lt;script&gt;alert(1)&lt;/script&gt;</code>)" in html
    assert "<script>" not in html and "<b>41" not in html


def test_an_unbalanced_backtick_is_shown_as_it_is() -> None:
    assert str(codespans("a `b c")) == "a `b c"
