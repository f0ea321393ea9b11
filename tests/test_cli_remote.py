"""`gateway orders ...` and `gateway cases ...` against a running gateway, as intake and legal people use them.

Each test serves the full app on a loopback port (aiohttp's test server) and runs
the command line in a thread, so the command talks real HTTP to it.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from prometheus_client import CollectorRegistry

from gateway.cli import main
from gateway.model import Caller
from gateway.packages import verify_package
from gateway.web.app import create_app
from gateway.web.state import STATE_KEY
from tests.console.support import JUSTIFICATION, REVIEW, submitted
from tests.orders_support import case_named, prepare_authorities, provider_public_key, seed_case, sign_case, submit
from tests.support import Env, make_env

DISCLOSE = "scenario 1: US court warrant for a US citizen's content stored in the US"
UNSIGNED = "scenario 20: unsigned US subpoena"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


@pytest.fixture
async def client(env: Env, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    prepare_authorities(env)  # authorities' public keys are read when the app starts
    return await aiohttp_client(create_app(env.settings, registry=CollectorRegistry()))


class Cli:
    """`gateway WORDS...` against the served app, with a token in $GATEWAY_TOKEN; (exit code, stdout, stderr)."""

    def __init__(self, client: TestClient, env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.url = str(client.server.make_url("/"))
        self.env, self.capsys, self.monkeypatch = env, capsys, monkeypatch

    def token(self, role: str, name: str) -> str:
        token = self.env.token(Caller(name, role))
        self.monkeypatch.setenv("GATEWAY_TOKEN", token)
        return token

    async def __call__(self, *words: str, url: str | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        options = ["--url", url or self.url, "--config", str(self.env.settings.config_path), "--data-dir", str(self.env.data_dir)]
        code = await asyncio.to_thread(main, [*words, *options])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(client: TestClient, env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("GATEWAY_TOKEN", raising=False)
    monkeypatch.delenv("GATEWAY_URL", raising=False)
    return Cli(client, env, capsys, monkeypatch)


async def signed_order(client: TestClient, env: Env, name: str, folder: Path) -> tuple[Path, str]:
    """Seed the case's subject and record; the case's signed order in a file, and its id."""
    case = case_named(name)
    env.clock.now = case.at
    await seed_case(client, env, case)
    path = folder / "order.jws"
    path.write_text(sign_case(env, case) + "\n")
    return path, case.order.id


async def review_cases(client: TestClient, env: Env, count: int) -> list[str]:
    """One US warrant naming `count` Irish subjects stored in Dublin: a legal-review case each."""
    base = case_named(REVIEW)
    case = replace(base, order=replace(base.order, id="sdny-queue", subjects=tuple(f"ie-{n}" for n in range(count))))
    env.clock.now = case.at
    await seed_case(client, env, case)
    status, document = await submit(client, env, sign_case(env, case))
    assert status == 201, document
    return [item["case"] for item in document["items"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- orders ---------------------------------------------------------------------


async def test_orders_submit_prints_the_decision_and_exits_0_when_every_item_is_disclosed(
    cli: Cli, client: TestClient, env: Env, tmp_path: Path
) -> None:
    path, order_id = await signed_order(client, env, DISCLOSE, tmp_path)
    cli.token("intake", "portal")
    code, out, _ = await cli("orders", "submit", str(path))
    assert code == 0
    assert f"order {order_id} from" in out and ": disclose (" in out


async def test_orders_submit_exits_2_when_an_item_goes_to_legal_review(cli: Cli, client: TestClient, env: Env, tmp_path: Path) -> None:
    path, _ = await signed_order(client, env, REVIEW, tmp_path)
    cli.token("intake", "portal")
    code, out, _ = await cli("orders", "submit", str(path), "--format", "json")
    assert code == 2
    assert [i["outcome"] for i in json.loads(out)["items"]] == ["legal-review"]


async def test_orders_submit_exits_2_and_prints_the_refusal_of_an_order_that_fails_verification(
    cli: Cli, client: TestClient, env: Env, tmp_path: Path
) -> None:
    path, _ = await signed_order(client, env, UNSIGNED, tmp_path)
    cli.token("intake", "portal")
    code, out, _ = await cli("orders", "submit", str(path))
    assert code == 2
    assert out.startswith("refuse: ")


async def test_orders_show_prints_the_document_as_it_stands_for_a_lawyer(cli: Cli, client: TestClient, env: Env, tmp_path: Path) -> None:
    path, order_id = await signed_order(client, env, DISCLOSE, tmp_path)
    cli.token("intake", "portal")
    assert (await cli("orders", "submit", str(path)))[0] == 0
    cli.token("legal", "counsel-1")
    code, out, _ = await cli("orders", "show", order_id, "--format", "json")
    assert code == 0 and json.loads(out)["id"] == order_id


async def test_orders_package_writes_a_package_that_verifies_offline(cli: Cli, client: TestClient, env: Env, tmp_path: Path) -> None:
    path, order_id = await signed_order(client, env, DISCLOSE, tmp_path)
    cli.token("intake", "portal")
    assert (await cli("orders", "submit", str(path)))[0] == 0
    target = tmp_path / "out" / "package.tar"
    target.parent.mkdir()
    code, out, err = await cli("orders", "package", order_id, "-o", str(target))
    assert code == 0 and out.startswith(f"ok: wrote {target}"), err
    assert verify_package(target, provider_public_key(env)).ok
    assert sorted(p.name for p in target.parent.iterdir()) == ["package.tar"]  # no partial file left beside it


async def test_orders_package_that_does_not_verify_with_the_key_given_is_not_written(
    cli: Cli, client: TestClient, env: Env, tmp_path: Path
) -> None:
    path, order_id = await signed_order(client, env, DISCLOSE, tmp_path)
    cli.token("intake", "portal")
    assert (await cli("orders", "submit", str(path)))[0] == 0
    other = tmp_path / "other.pub"
    other.write_bytes(
        ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    folder = tmp_path / "out"
    folder.mkdir()
    code, out, _ = await cli("orders", "package", order_id, "-o", str(folder / "package.tar"), "--key", str(other))
    assert code == 1 and out.startswith("broken: the package does not verify")
    assert list(folder.iterdir()) == []


async def test_orders_package_for_an_order_with_nothing_released_leaves_no_file_and_prints_the_problem(
    cli: Cli, client: TestClient, env: Env, tmp_path: Path
) -> None:
    path, _ = await signed_order(client, env, REVIEW, tmp_path)
    cli.token("intake", "portal")
    await cli("orders", "submit", str(path))
    folder = tmp_path / "out"
    folder.mkdir()
    code, _, err = await cli("orders", "package", case_named(REVIEW).order.id, "-o", str(folder / "package.tar"))
    assert code == 1 and err.startswith("nothing-disclosed: ")
    assert list(folder.iterdir()) == []


# --- cases ----------------------------------------------------------------------


async def test_cases_list_follows_every_cursor_to_the_whole_queue_in_order(cli: Cli, client: TestClient, env: Env) -> None:
    ids = await review_cases(client, env, 5)
    cli.token("legal", "counsel-1")
    code, out, _ = await cli("cases", "list", "--page-size", "2", "--format", "json")
    listed = [c["id"] for c in json.loads(out)["cases"]]
    assert code == 0 and sorted(listed) == sorted(ids) and len(listed) == len(ids)
    assert listed == [c["id"] for c in await client.app[STATE_KEY].rt.cases.list()]


async def test_cases_list_with_a_limit_stops_there_and_says_more_follow(cli: Cli, client: TestClient, env: Env) -> None:
    await review_cases(client, env, 5)
    cli.token("legal", "counsel-1")
    code, out, _ = await cli("cases", "list", "--limit", "3", "--page-size", "2")
    assert code == 0
    assert len([line for line in out.splitlines() if line.startswith("case-")]) == 3 and "more follow" in out


async def test_cases_show_prints_the_case_with_its_decision_and_deadline(cli: Cli, client: TestClient, env: Env) -> None:
    [case_id] = await review_cases(client, env, 1)
    cli.token("legal", "counsel-1")
    code, out, _ = await cli("cases", "show", case_id)
    assert code == 0
    assert out.startswith(f"case {case_id} (legal-review): open") and "deadline 2026-10-15" in out


async def test_two_lawyers_approving_through_the_cli_approve_the_case(cli: Cli, client: TestClient, env: Env) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    cli.token("legal", "alice")
    assert (await cli("cases", "approve", item["case"], "--justification", JUSTIFICATION))[0] == 0
    cli.token("legal", "bob")
    code, out, _ = await cli("cases", "approve", item["case"], "--justification", JUSTIFICATION, "--format", "json")
    assert code == 0 and json.loads(out)["state"] == "approved"


async def test_cases_deny_refuses_the_case_with_the_reason_given(cli: Cli, client: TestClient, env: Env) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    cli.token("legal", "alice")
    code, out, _ = await cli("cases", "deny", item["case"], "--justification", "Irish law forbids this transfer.", "--format", "json")
    assert code == 0
    assert json.loads(out)["denied"]["reason"] == "Irish law forbids this transfer."


async def test_cases_deny_without_a_justification_is_a_usage_error(cli: Cli, client: TestClient, env: Env) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    cli.token("legal", "alice")
    with pytest.raises(SystemExit) as exited:
        await cli("cases", "deny", item["case"])
    assert exited.value.code == 64 and "--justification" in cli.capsys.readouterr().err
    assert (await client.get(f"/v1/cases/{item['case']}", headers=env.person("legal", "r"))).status == 200


async def test_a_problem_from_the_gateway_is_printed_as_code_and_detail_on_stderr_and_exits_1(cli: Cli, client: TestClient, env: Env) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    cli.token("intake", "portal")  # intake may not decide cases
    code, out, err = await cli("cases", "approve", item["case"], "--justification", JUSTIFICATION)
    assert (code, out) == (1, "")
    assert err.startswith("forbidden: ")


# --- connection and token hygiene ---------------------------------------------------


async def test_an_unreachable_gateway_exits_1_naming_the_url(cli: Cli) -> None:
    cli.token("legal", "counsel-1")
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = await cli("cases", "list", url=url)
    assert code == 1 and err.startswith("gateway-unreachable: ") and url in err


async def test_a_token_from_the_environment_is_never_printed(cli: Cli, client: TestClient, env: Env, tmp_path: Path) -> None:
    _, _, item = await submitted(client, env, REVIEW)
    token = cli.token("intake", "portal")
    runs = [await cli("cases", "approve", item["case"], "--justification", JUSTIFICATION), await cli("cases", "list", "--format", "json")]
    assert all(token not in out + err for _, out, err in runs)


async def test_without_a_token_the_command_is_a_usage_error_and_sends_nothing(cli: Cli) -> None:
    code, out, err = await cli("cases", "list", url=f"http://127.0.0.1:{free_port()}")  # nothing listens: a request would fail otherwise
    assert (code, out) == (64, "") and "GATEWAY_TOKEN" in err


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/", "127.0.0.1:8080", "http://user:pw@127.0.0.1:8080"])
async def test_a_url_that_is_not_a_plain_http_address_is_a_usage_error(cli: Cli, url: str) -> None:
    cli.token("legal", "counsel-1")
    code, _, err = await cli("cases", "list", url=url)
    assert code == 64 and "`--url`" in err


@pytest.mark.parametrize("case_id", ["..", "."])
async def test_an_id_that_would_climb_to_another_route_is_a_usage_error(cli: Cli, case_id: str) -> None:
    cli.token("legal", "counsel-1")
    code, _, err = await cli("cases", "approve", case_id, "--justification", JUSTIFICATION)
    assert code == 64 and "is not a case id" in err


async def test_a_redirect_is_not_followed_so_the_token_goes_nowhere_else(cli: Cli) -> None:
    seen: list[str | None] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"cases": [], "next_cursor": None})

    elsewhere_app = web.Application()
    elsewhere_app.router.add_get("/{tail:.*}", record)
    async with TestServer(elsewhere_app) as elsewhere:

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(str(elsewhere.make_url(request.path_qs)))

        redirector_app = web.Application()
        redirector_app.router.add_get("/{tail:.*}", redirect)
        async with TestServer(redirector_app) as redirector:
            cli.token("legal", "counsel-1")
            code, _, err = await cli("cases", "list", url=str(redirector.make_url("/")))
    assert code == 1 and err.startswith("redirect-refused: ")
    assert seen == []


async def test_a_server_error_without_a_problem_document_exits_1(cli: Cli) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", broken)
    async with TestServer(app) as proxy:
        cli.token("legal", "counsel-1")
        code, _, err = await cli("cases", "list", url=str(proxy.make_url("/")))
    assert code == 1 and err.startswith("http-502: ")


async def test_a_package_cut_short_leaves_no_file_behind(cli: Cli, tmp_path: Path) -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        response.content_length = 100_000
        await response.prepare(request)
        await response.write(b"\0" * 4096)
        assert request.transport is not None
        request.transport.close()  # as the gateway does when a store fails mid-stream
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", cut)
    folder = tmp_path / "out"
    folder.mkdir()
    async with TestServer(app) as gateway:
        cli.token("intake", "portal")
        code, _, err = await cli("orders", "package", "order-1", "-o", str(folder / "package.tar"), url=str(gateway.make_url("/")))
    assert code == 1 and err.startswith("package-incomplete: ")
    assert list(folder.iterdir()) == []
