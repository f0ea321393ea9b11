"""The `gateway` command: exit codes and messages."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_config
from gateway.keys import load_public_key
from gateway.model import system_clock
from gateway.tokens import verify_token
from tests.support import SHIPPED_CONFIG, run_cli


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(SHIPPED_CONFIG, tmp_path / "regions.toml")
    return tmp_path


run = run_cli


def test_check_of_a_clean_file_prints_nothing_and_exits_0(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(workdir, "check") == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_check_of_a_bad_file_lists_every_problem_with_its_key_path_and_exits_3(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (workdir / "regions.toml").read_text()
    text = text.replace('jurisdiction = "IE"', 'jurisdiction = "XX"').replace('location = "Sydney"', 'locaton = "Sydney"')
    bad = workdir / "bad.toml"
    bad.write_text(text)
    assert main(["check", str(bad)]) == 3
    err = capsys.readouterr().err
    assert "regions.eu-west-1.jurisdiction: unknown jurisdiction `XX`" in err
    assert "regions.ap-southeast-2.locaton: unknown key" in err
    assert "regions.ap-southeast-2.location: is required" in err


def test_check_reports_an_empty_list_of_consent_relays_with_its_key_path(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = workdir / "bad.toml"
    bad.write_text((workdir / "regions.toml").read_text().replace('consent_relays = ["customer-portal"]', "consent_relays = []"))
    assert main(["check", str(bad)]) == 3
    assert "support_access.consent_relays: must name at least one service" in capsys.readouterr().err


def test_check_accepts_a_limits_table_without_max_record_bytes(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = workdir / "bare.toml"
    bare.write_text((workdir / "regions.toml").read_text().replace("max_record_bytes = 16777216", "# no limit given"))
    assert main(["check", str(bare)]) == 0
    assert load_config(bare).limits.max_record_bytes == 16 * 1024 * 1024


def test_check_reports_a_max_record_bytes_that_is_not_a_number_with_its_key_path(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = workdir / "bad.toml"
    bad.write_text((workdir / "regions.toml").read_text().replace("max_record_bytes = 16777216", 'max_record_bytes = "16 MiB"'))
    assert main(["check", str(bad)]) == 3
    assert "limits.max_record_bytes: must be an integer" in capsys.readouterr().err


def test_check_can_answer_in_json(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = workdir / "bad.toml"
    bad.write_text((workdir / "regions.toml").read_text().replace('jurisdiction = "IE"', 'jurisdiction = "XX"'))
    assert main(["check", str(bad), "--format", "json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert {"path": "regions.eu-west-1.jurisdiction", "message": "unknown jurisdiction `XX`"} in report["findings"]


def test_keys_init_creates_private_keys_readable_only_by_their_owner(workdir: Path) -> None:
    assert run(workdir, "keys", "init") == 0
    key = workdir / "data/keys/tags/eu-west-1.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert (workdir / "data/keys/tags/eu-west-1.pub").exists()


def test_keys_init_makes_the_federation_key_and_no_tag_key_for_a_region_a_peer_serves(workdir: Path) -> None:
    text = (workdir / "regions.toml").read_text()
    text = text.replace('store = { kind = "file", path = "stores/eu-west-1" }\ntag_key = "keys/tags/eu-west-1.key"', 'owner = "europe"')
    text += '\n[federation]\nid = "americas"\nkey = "keys/federation.key"\n'
    text += '\n[peers.europe]\nurl = "https://gateway.eu.example"\nkey = "keys/peers/europe.pub"\n'
    (workdir / "regions.toml").write_text(text)
    assert run(workdir, "keys", "init") == 0
    made = {p.relative_to(workdir / "data/keys").as_posix() for p in (workdir / "data/keys").rglob("*.key")}
    assert "federation.key" in made and "tags/eu-west-1.key" not in made and "tags/eu-central-1.key" in made


def test_keys_init_keeps_existing_keys(workdir: Path) -> None:
    run(workdir, "keys", "init")
    before = (workdir / "data/keys/tokens.key").read_bytes()
    run(workdir, "keys", "init")
    assert (workdir / "data/keys/tokens.key").read_bytes() == before


def test_token_issue_prints_a_token_the_gateway_accepts(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(workdir, "keys", "init")
    capsys.readouterr()
    assert run(workdir, "token", "issue", "--service", "billing", "--region", "us-east-1", "--purpose", "billing") == 0
    token = capsys.readouterr().out.strip()
    config = load_config(workdir / "regions.toml")
    caller = verify_token(
        token, key=load_public_key(workdir / "data/keys/tokens.pub"), identity=config.identity, now=system_clock(), regions=config.regions
    )
    assert (caller.service, caller.region, caller.purpose) == ("billing", "us-east-1", "billing")


def test_token_issue_for_a_person_needs_a_subject(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(workdir, "keys", "init")
    assert run(workdir, "token", "issue", "--role", "legal") == 1
    assert "--subject" in capsys.readouterr().err


def test_token_issue_for_an_unknown_region_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(workdir, "keys", "init")
    assert run(workdir, "token", "issue", "--service", "s", "--region", "mars-1", "--purpose", "p") == 1
    assert "`mars-1`" in capsys.readouterr().err


def test_token_issue_refuses_a_public_key_in_place_of_the_private_key(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(workdir, "keys", "init")
    shutil.copy(workdir / "data/keys/tokens.pub", workdir / "data/keys/tokens.key")
    assert run(workdir, "token", "issue", "--role", "ops", "--subject", "oncall") == 1
    assert "public key" in capsys.readouterr().err


def _ledger_with_entries(workdir: Path) -> Path:
    """Five entries, each group commit's head signed with the provider key, as the gateway writes them."""
    import asyncio

    from gateway.audit import FileLedger
    from gateway.keys import load_ed25519_private, resolve
    from gateway.model import system_clock
    from gateway.runtime import init_keys

    path = workdir / "data/ledger/ledger.jsonl"
    config = load_config(workdir / "regions.toml")
    init_keys(config, workdir / "data")
    key = load_ed25519_private(resolve(workdir / "data", config.identity.provider_key))

    async def fill() -> None:
        ledger = await FileLedger.open(path, system_clock, checkpoint_key=key)
        for i in range(5):
            await ledger.append("service.read", {"subject": f"s{i}", "outcome": "allow"})
        await ledger.close()

    asyncio.run(fill())
    return path


def test_audit_verify_of_an_intact_ledger_exits_0(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _ledger_with_entries(workdir)
    assert run(workdir, "audit", "verify") == 0
    assert capsys.readouterr().out.startswith("ok: 5 entries")


def test_audit_verify_of_an_edited_line_exits_3_and_names_it(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _ledger_with_entries(workdir)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"allow"', b'"refuse"')
    path.write_bytes(b"".join(lines))
    assert run(workdir, "audit", "verify", "--format", "json") == 3
    answer = json.loads(capsys.readouterr().out)
    assert answer["ok"] is False and answer["chains"][0]["broken_at"] == 3


def test_audit_verify_of_a_deleted_line_exits_3(workdir: Path) -> None:
    path = _ledger_with_entries(workdir)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:1] + lines[2:]))
    assert run(workdir, "audit", "verify") == 3


def test_audit_verify_of_a_missing_ledger_exits_3(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(workdir, "audit", "verify") == 3
    assert "does not exist" in capsys.readouterr().err


def test_serve_refuses_to_start_on_a_bad_config_with_the_same_messages_as_check(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = workdir / "regions.toml"
    config.write_text(config.read_text().replace('jurisdiction = "IE"', 'jurisdiction = "XX"'))
    assert run(workdir, "serve", "--port", "0") == 3
    assert "regions.eu-west-1.jurisdiction: unknown jurisdiction `XX`" in capsys.readouterr().err


def test_serve_without_key_creation_refuses_to_start_when_a_key_is_missing(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(workdir, "serve", "--port", "0", "--no-init-keys") == 1
    assert "gateway keys init" in capsys.readouterr().err


def test_version_prints_the_installed_version_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"gateway {__version__}"


def test_a_usage_error_exits_64_not_the_code_of_a_refused_decision(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["explain"])  # the order file is missing
    assert exited.value.code == 64
    assert "usage:" in capsys.readouterr().err


def test_an_unknown_option_of_a_subcommand_exits_64(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["audit", "verify", "--no-such-option"])
    assert exited.value.code == 64


def test_token_issue_refuses_a_ttl_longer_than_the_maximum_token_lifetime(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(workdir, "keys", "init")
    assert run_cli(workdir, "token", "issue", "--role", "legal", "--subject", "l", "--ttl", str(30 * 86400)) == 1
    assert "max_token_lifetime_seconds" in capsys.readouterr().err


def test_a_reader_that_went_away_before_the_output_ends_the_command_with_exit_1_and_no_traceback(workdir: Path) -> None:
    run_cli(workdir, "keys", "init")
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| head` does once it has its lines
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "token", "issue", "--role", "legal", "--subject", "counsel-1"],
            cwd=workdir,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (1, "")


def test_serve_takes_the_sweep_interval_from_its_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.cli import build_parser

    assert build_parser().parse_args(["serve", "--sweep-seconds", "0.5"]).sweep_seconds == 0.5
    monkeypatch.setenv("GATEWAY_SWEEP_SECONDS", "2")
    assert build_parser().parse_args(["serve"]).sweep_seconds == 2.0
