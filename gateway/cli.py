"""The ``gateway`` command. One function per command; errors are turned into
output and exit codes in exactly one place (``main``).

Exit codes: 0 ok, 1 failure, 2 a refused or non-disclose decision, 3 invalid
configuration or a broken ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import socket
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from gateway.aio import LOOPS, event_loop
from gateway.errors import ConfigError, GatewayError, KeyFileError, LedgerBroken
from gateway.keys import load_private_key, resolve
from gateway.model import ROLES, Caller, system_clock

EXIT_OK, EXIT_FAILURE, EXIT_DECISION, EXIT_INVALID = 0, 1, 2, 3
EXIT_USAGE = 64  # sysexits' EX_USAGE: distinct from 2, which scripts read as a refused decision


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("GATEWAY_CONFIG", "regions.toml")),
        help="the regions and policy file (default: ./regions.toml, or $GATEWAY_CONFIG)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("GATEWAY_DATA_DIR", "data")),
        help="keys, local stores and the ledger (default: ./data, or $GATEWAY_DATA_DIR)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from gateway.runtime import Settings

    if hasattr(args, "chain_id"):  # a command that writes the ledger
        overrides.setdefault("chain_id", _chain_id(args))
    return Settings(config_path=args.config, data_dir=args.data_dir, **overrides)


def _chain_id(args: argparse.Namespace) -> str:
    """The ledger chain a writing command writes: ``--chain-id``, else ``$GATEWAY_CHAIN_ID``, else the host name (a pod's name).

    An operator's command that may run beside a serving gateway (``subjects index``, ``subjects resign``) writes,
    by default, that name with ``-admin`` after it, so it never waits on the lock of the chain the gateway writes."""
    from gateway.audit.chain import chain_id_from, check_chain_id
    from gateway.errors import InvalidRequest

    if args.chain_id:
        return str(args.chain_id)
    suffix = getattr(args, "chain_suffix", "")
    named = os.environ.get("GATEWAY_CHAIN_ID")
    if named:
        try:
            return check_chain_id(named[: 100 - len(suffix)] + suffix)
        except ValueError as exc:
            raise InvalidRequest(f"`GATEWAY_CHAIN_ID`: {exc}", code="invalid-arguments") from None
    return chain_id_from(socket.gethostname())[: 100 - len(suffix)] + suffix


ADMIN_CHAIN_SUFFIX = "-admin"  # the default chain of operators' commands that may run beside a serving gateway


def _chain_id_arg(text: str) -> str:
    from gateway.audit.chain import check_chain_id

    try:
        return check_chain_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _chain_option(parser: argparse.ArgumentParser, *, suffix: str = "") -> None:
    parser.add_argument(
        "--chain-id",
        type=_chain_id_arg,
        help="the ledger chain this process writes, DATA_DIR/ledger/ID.jsonl: one per replica and per worker, never shared "
        f"(default: $GATEWAY_CHAIN_ID, else the host name, which is the pod's name on Kubernetes{', followed by ' + suffix if suffix else ''})",
    )
    parser.set_defaults(chain_suffix=suffix)


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"`{text}` is not a number of seconds (0 or more)")
    return value


def _emit(args: argparse.Namespace, text: str, data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if args.format == "json" else text)


# --- commands --------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.config import load_config

    path = args.path or args.config
    try:
        config = load_config(path)
    except ConfigError as error:
        if args.format == "json":
            print(json.dumps({"ok": False, "findings": [{"path": f.path, "message": f.message} for f in error.findings]}, indent=2))
        else:
            for finding in error.findings:
                print(f"{path}: {finding}", file=sys.stderr)
        return EXIT_INVALID
    if args.format == "json":
        print(json.dumps({"ok": True, "digest": config.digest}))
    return EXIT_OK


def cmd_keys_init(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.runtime import init_keys

    config = load_config(args.config)
    made = init_keys(config, args.data_dir)
    _emit(args, "\n".join(f"created {m}" for m in made) or "all keys exist", {"created": made})
    return EXIT_OK


def cmd_token_issue(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.errors import InvalidRequest
    from gateway.tokens import check_caller, issue_token

    config = load_config(args.config)
    if args.service:
        caller = Caller(principal=args.subject or args.service, role="service", service=args.service, region=args.region, purpose=args.purpose)
    elif args.role and args.role != "service":
        if not args.subject:
            raise InvalidRequest(f"a `{args.role}` token needs `--subject NAME` (the person or system it is for)", code="invalid-arguments")
        caller = Caller(principal=args.subject, role=args.role)
    else:
        raise InvalidRequest(
            "give `--service NAME --region R --purpose P` for a service, or `--role intake|legal|ops|support --subject NAME`", code="invalid-arguments"
        )
    check_caller(caller, config.regions.keys())
    key = load_private_key(resolve(args.data_dir, config.identity.token_private_key))
    ttl = timedelta(seconds=args.ttl) if args.ttl else None
    longest = config.identity.max_token_lifetime_seconds
    if args.ttl and args.ttl > longest:
        raise InvalidRequest(f"`--ttl` {args.ttl} is longer than `max_token_lifetime_seconds` ({longest}), so it would be refused", code="invalid-arguments")
    print(issue_token(caller, key=key, identity=config.identity, now=system_clock(), ttl=ttl))
    return EXIT_OK


def _ledger_public_key(args: argparse.Namespace) -> Any:
    """The provider's public key for checkpoint signatures: ``--key``, else from the config; ``None`` if neither has one."""
    from gateway.config import load_config
    from gateway.keys import load_ed25519_public, public_path_for

    if args.key is not None:
        return load_ed25519_public(args.key)
    if not args.config.exists():
        return None
    path = public_path_for(resolve(args.data_dir, load_config(args.config).identity.provider_key))
    return load_ed25519_public(path) if path.exists() else None


def _export_spec(args: argparse.Namespace) -> Any:
    """The configuration's ``[audit] export``, or None (no config file, or no export in it)."""
    from gateway.config import load_config

    return load_config(args.config).audit.export if args.config.exists() else None


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Verify every ledger chain: hash chain, sequence, signed heads and checkpoints, and with ``--remote`` the bucket's copy.

    Every chain in the data folder's ledger (or the one ``--ledger`` file) is
    verified on its own; with ``--remote`` every chain exported to the
    ``[audit] export`` bucket too: a local one is compared with its segments
    there, and one found only there (a replica whose disk is gone) is verified
    from its segments. Exit 0 only if every chain is proven: each entry chains
    and is covered by a signature of the provider's key (a signed head, or for
    a chain kept only off the box, its last signed checkpoint), the one thing
    a chain edited and rehashed without that key cannot show. What no check
    here can show is printed too.
    """
    from gateway.audit.chains import check_chains, local_chains
    from gateway.errors import InvalidRequest

    folder = _settings(args).ledger_dir
    if args.ledger is not None:
        if not args.ledger.exists():
            raise LedgerBroken(f"ledger `{args.ledger}` does not exist")
        files = {args.ledger.stem: args.ledger}
    else:
        files = local_chains(folder)
    spec = _export_spec(args) if args.remote else None
    if args.remote and spec is None:
        raise InvalidRequest("`--remote` needs `[audit] export = {...}` in the configuration", code="invalid-arguments")
    public_key = _ledger_public_key(args)

    async def check() -> Any:
        bucket = None
        if spec is not None:
            from gateway.audit.export import SegmentBucket

            bucket = SegmentBucket(spec, system_clock)
        try:
            return await check_chains(files, public_key=public_key, bucket=bucket, named=args.ledger is None)
        finally:
            if bucket is not None:
                await bucket.close()

    checks = asyncio.run(check()) if files or spec is not None else []
    if not checks:
        unasked = "" if args.remote else " (and `--remote` was not asked)"
        raise LedgerBroken(f"no ledger chain in `{folder}`: the folder does not exist or holds no `<chain>.jsonl`{unasked}")
    verdicts = [_chain_verdict(c, public_key) for c in checks]
    broken = sum(1 for data, _ in verdicts if not data["ok"])
    text = "\n".join(text for _, text in verdicts)
    if len(checks) > 1:
        text += f"\n{len(checks)} chains: {len(checks) - broken} ok, {broken} broken"
    _emit(args, text, {"ok": not broken, "chains": [data for data, _ in verdicts]})
    return EXIT_INVALID if broken else EXIT_OK


def _chain_verdict(check: Any, public_key: Any) -> tuple[dict[str, Any], str]:
    """One chain's result for ``audit verify``: its JSON object and its text."""
    report, chain = check.report, check.chain
    data: dict[str, Any] = {
        "chain": chain,
        "source": check.source,
        "ok": report.ok,
        "entries": report.entries,
        "first_seq": 1 if report.entries else 0,
        "last_seq": report.last_seq,
        "last_hash": report.last_hash,
        "problem": report.problem,
        "broken_at": report.broken_at,
        "torn_tail": report.torn_tail,
        "checkpoints": report.checkpoints,
        "last_checkpoint": report.last_checkpoint,
        "signatures_checked": report.signatures_checked,
        "heads": report.heads,
        "first_head": report.first_head,
        "last_head": report.last_head,
    }
    where = f"chain `{chain}`" + (f", kept off the box only ({check.segments} segments)" if check.source == "remote" else "")
    n = report.entries
    # (1) without the provider's public key nothing shows the chain was not rebuilt
    if report.ok and public_key is None:
        data.update(ok=False, problem="no provider public key was found to check the ledger's signed heads and checkpoints; pass `--key FILE`")
        return data, f"broken: {data['problem']} ({where}); {n} entries chain, which a chain rebuilt without the key would too"
    # (2) the segments kept off the box match the local lines
    if check.remote is not None:
        data["remote"] = check.remote
        if check.remote["problem"]:
            data.update(ok=False, problem=check.remote["problem"], broken_at=check.remote["broken_at"])
    if data["ok"] and check.source == "remote":
        proved = f"entries 1..{n} chained across the segments in the bucket, the last a signed checkpoint covering every entry before it"
        if report.checkpoints:
            proved += f", {report.checkpoints} signed checkpoints verify"
        not_proved = "entries the writer added after its last exported segment were only on its disk"
        data["proved"], data["not_proved"] = proved, not_proved
        return data, f"ok: {n} entries of {where}: {proved}, last hash {report.last_hash}\n  not proved: {not_proved}"
    if data["ok"]:
        proved = f"entries 1..{n} chained, every one covered by a signed head"
        proved += f" ({report.heads} verify, the first at entry {report.first_head}, the last at entry {n})"
        if report.checkpoints:
            proved += f", {report.checkpoints} signed checkpoints verify"
        not_proved = "a cut back to an earlier signed head, or the whole file replaced, does not show locally; compare with the off-box copy (`--remote`)"
        if check.remote is not None:
            through = check.remote["through"]
            proved += f", {check.remote['verified']} segments match the off-box copy (entries 1..{through})"
            if check.remote["not_uploaded"]:
                proved += f" ({len(check.remote['not_uploaded'])} not uploaded yet)"
            not_proved = f"entries {through + 1}..{n} are not off the box yet: a cut back to a signed head among them does not show"
            if through >= n:
                not_proved = "a rewrite by someone holding the provider key"
        data["proved"], data["not_proved"] = proved, not_proved
        return data, f"ok: {n} entries of {where}: {proved}, last hash {report.last_hash}\n  not proved: {not_proved}"
    at = data["broken_at"]
    lines = check.path.read_bytes().splitlines() if check.path is not None else []
    data["broken_entry"] = lines[at - 1].decode("utf-8", "replace")[:1000] if at and at <= len(lines) else None
    before = f"{n} entries verify before it" if not at or at > n else f"entries 1..{n} chain but are not proven"
    text = f"broken: {data['problem']} ({where}, {'entry' if check.source == 'remote' else 'line'} {at}); {before}"
    if data["broken_entry"] is not None:
        text += f"\n  {data['broken_entry']}"
    return data, text


def _ledger_entries(args: argparse.Namespace, config: Any) -> list[Any]:
    """Every entry of the ledger: the ``--ledger`` file alone, or every chain here and, with an export, in the bucket."""
    from gateway.audit import merge_chains, read_entries
    from gateway.audit.chains import local_chains, read_local
    from gateway.runtime import chain_reader

    if args.ledger is not None:
        if not args.ledger.exists():
            raise LedgerBroken(f"ledger `{args.ledger}` does not exist")
        return read_entries(args.ledger)
    folder = _settings(args).ledger_dir
    if config.audit.export is None:
        if not local_chains(folder):
            raise LedgerBroken(f"no ledger chain in `{folder}`: the folder does not exist or holds no `<chain>.jsonl`")
        chains = read_local(folder)
        return merge_chains(chains[chain] for chain in sorted(chains))

    async def read() -> list[Any]:
        reader = chain_reader(folder, config, system_clock)
        try:
            return await reader.entries()
        finally:
            await reader.close()

    return asyncio.run(read())


def cmd_report_transparency(args: argparse.Namespace) -> int:
    """The transparency report from every chain of the audit ledger, as JSON, CSV or one HTML page."""
    from gateway.config import load_config
    from gateway.errors import InvalidRequest
    from gateway.reports.render import render
    from gateway.reports.transparency import build_report, parse_range

    try:
        start, end = parse_range(args.start, args.end)
    except ValueError as exc:
        raise InvalidRequest(str(exc).replace("`from`", "`--from`").replace("`to`", "`--to`"), code="invalid-arguments") from None
    config = load_config(args.config)
    report = build_report(_ledger_entries(args, config), start, end, content_categories=frozenset(config.categories[-1:]))
    text = render(report, args.format, generated_at=system_clock())
    if report.skipped:
        first = report.skipped[0]
        print(
            f"warning: {len(report.skipped)} ledger {'entry' if len(report.skipped) == 1 else 'entries'} could not be read, counted nowhere"
            f" (first: entry {first.seq if first.seq is not None else '?'}, `{first.kind or '?'}`: {first.problem})",
            file=sys.stderr,
        )
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_OK


def _read_json_file(path: Path, what: str) -> Any:
    from gateway.errors import InvalidRequest

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidRequest(f"{what} `{path}` does not exist", code="invalid-arguments") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{what} `{path}` is not valid JSON: {exc}", code="invalid-arguments") from None


def cmd_order_sign(args: argparse.Namespace) -> int:
    """Sign a claims file as an authority: for tests, demos and the intake portal's test harness."""
    from gateway.errors import InvalidRequest
    from gateway.legal.verify import sign_order
    from gateway.model import parse_time

    claims = _read_json_file(args.claims, "claims file")
    if not isinstance(claims, dict):
        raise InvalidRequest(f"claims file `{args.claims}` must hold a JSON object", code="invalid-arguments")
    key = load_private_key(args.authority_key)
    now = system_clock()
    claims.setdefault("iat", int(now.timestamp()))
    for name in ("iat", "exp", "nbf"):
        if isinstance(claims.get(name), str):
            try:
                claims[name] = int(parse_time(claims[name]).timestamp())
            except ValueError:
                raise InvalidRequest(f"claim `{name}` must be a NumericDate or an RFC 3339 time", code="invalid-arguments") from None
    kid = args.kid or claims.get("iss")
    if not isinstance(kid, str) or not kid:
        raise InvalidRequest("name the signing authority with `--kid ID` or an `iss` claim", code="invalid-arguments")
    print(sign_order(claims, key=key, kid=kid))
    return EXIT_OK


def _read_order(path: Path) -> str:
    from gateway.errors import InvalidRequest

    try:
        return (sys.stdin.read() if str(path) == "-" else path.read_text(encoding="ascii")).strip()
    except FileNotFoundError:
        raise InvalidRequest(f"order file `{path}` does not exist", code="invalid-arguments") from None
    except UnicodeDecodeError:
        raise InvalidRequest(f"order file `{path}` is not a compact JWS", code="invalid-arguments") from None


def cmd_explain(args: argparse.Namespace) -> int:
    """Dry-run an order against the stores: the decision document with its trace; changes nothing."""
    from gateway.legal.verify import OrderRejected
    from gateway.model import parse_time
    from gateway.runtime import Runtime
    from gateway.services.documents import Explained

    token = _read_order(args.order)
    at = parse_time(args.at) if args.at else None

    async def run() -> Explained:
        rt = await Runtime.open(_settings(args, init_keys=False), read_only=True)
        try:
            return await rt.orders.explain(token, at=at)
        finally:
            await rt.close()

    try:
        explained = asyncio.run(run())
    except OrderRejected as rejected:
        data = {"outcome": "refuse", "reasons": [{"code": rejected.code, "rule": rejected.rule, "detail": rejected.message}]}
        _emit(args, f"refuse: {rejected.code} ({rejected.rule}): {rejected.message}", data)
        return EXIT_DECISION
    document = explained.document
    if args.format == "json":
        print(json.dumps(explained.to_json(), indent=2, sort_keys=True))
    else:
        print(f"order {document.id} from {document.authority} ({document.instrument})")
        for item in document.items:
            reason = item.reasons[0]
            print(f"  {item.subject} / {item.region or '-'} / {item.category}: {item.outcome} ({reason['code']}, {item.rule})")
        print("trace:")
        for line in explained.trace:
            print(f"  {line}")
    return EXIT_OK if document.items and all(i.outcome == "disclose" for i in document.items) else EXIT_DECISION


def cmd_package_verify(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.keys import load_ed25519_public, public_path_for
    from gateway.packages import verify_package

    if args.key is not None:
        key_path = args.key
    else:
        key_path = public_path_for(resolve(args.data_dir, load_config(args.config).identity.provider_key))
    report = verify_package(args.package, load_ed25519_public(key_path))
    data = {"ok": report.ok, "order": report.order, "records": report.records, "problems": list(report.problems), "withheld": report.withheld}
    if report.ok:
        text = f"ok: package for order {report.order}, {report.records} records, signature and hashes verify"
        if report.withheld:  # the provider's signed word that these were left out, and why
            text += "".join(f"\n  withheld: {w['path']} ({w['reason']}: {w['detail']})" for w in report.withheld)
        _emit(args, text, data)
        return EXIT_OK
    _emit(args, "broken:\n" + "\n".join(f"  {p}" for p in report.problems), data)
    return EXIT_FAILURE


def cmd_audit_reconcile(args: argparse.Namespace) -> int:
    """One reconcile pass over write intents without an outcome; exit 1 if any old enough stayed open (its region could not be read)."""
    from gateway.runtime import Runtime

    async def run() -> Any:
        rt = await Runtime.open(_settings(args, init_keys=False))
        try:
            assert rt.reconciler is not None
            return await rt.reconciler.run_once()
        finally:
            await rt.close(export_seconds=rt.settings.shutdown_export_seconds)

    report = asyncio.run(run())
    data = {"reconciled": dict(report.reconciled), "unreachable": report.unreachable, "waiting": report.waiting}
    results = ", ".join(f"{count} {result}" for result, count in sorted(report.reconciled.items())) or "none"
    _emit(
        args,
        f"reconciled {report.total} intents ({results}); {report.unreachable} left open (region unreadable); "
        f"{report.waiting} younger than reconcile_after_seconds",
        data,
    )
    return EXIT_FAILURE if report.unreachable else EXIT_OK


def cmd_subjects_resign(args: argparse.Namespace) -> int:
    """Sign stored subject profiles that carry no valid tag, as they stand; each act is ledgered."""
    from gateway.runtime import Runtime

    if bool(args.subjects) == bool(args.all):
        print("name the subjects to re-sign, or give --all", file=sys.stderr)
        return EXIT_FAILURE
    operator = args.by or os.environ.get("USER") or "operator"

    async def run() -> dict[str, list[str]]:
        rt = await Runtime.open(_settings(args, init_keys=False))
        try:
            done: dict[str, list[str]] = {"resigned": [], "already_signed": []}
            for subject_id in args.subjects or await rt.records.subject_ids():
                resigned = await rt.records.resign_profile(subject_id, by=operator)
                done["resigned" if resigned else "already_signed"].append(subject_id)
            return done
        finally:
            await rt.close(export_seconds=rt.settings.shutdown_export_seconds)

    done = asyncio.run(run())
    lines = [f"re-signed {s}" for s in done["resigned"]] + [f"already signed {s}" for s in done["already_signed"]]
    _emit(args, "\n".join(lines) or "no subjects", done)
    return EXIT_OK


def cmd_subjects_index(args: argparse.Namespace) -> int:
    """Give every stored subject its home claim, then make the claims the directory (see ``RecordService.index_subjects``)."""
    from gateway.runtime import Runtime

    async def run() -> tuple[int, int]:
        rt = await Runtime.open(_settings(args, init_keys=False))
        try:
            return await rt.records.index_subjects()
        finally:
            await rt.close(export_seconds=rt.settings.shutdown_export_seconds)

    written, seen = asyncio.run(run())
    _emit(args, f"indexed {seen} subjects ({written} home claims written); the directory is complete", {"subjects": seen, "claims_written": written})
    return EXIT_OK


def cmd_policy_test(args: argparse.Namespace) -> int:
    """Run decision cases against the configured rules; on failure print expected versus actual."""
    from gateway.config import load_config
    from gateway.legal.coverage import coverage
    from gateway.legal.coverage import text as coverage_text
    from gateway.legal.coverage import to_json as coverage_json
    from gateway.legal.decision_cases import CaseFileError, load_cases, run_case
    from gateway.legal.engine import Engine

    config = load_config(args.config)
    try:
        cases = load_cases(args.paths)
    except CaseFileError as error:
        print(error.diagnostics(), file=sys.stderr)
        return EXIT_INVALID
    if not cases:
        print("no cases found: an empty test proves nothing", file=sys.stderr)
        return EXIT_FAILURE
    engine = Engine(config)
    results = [run_case(case, engine, config.regions) for case in cases]
    failed = [r for r in results if not r.passed]
    covered = coverage(results, config.legal, config.regions) if args.coverage else None
    if args.format == "json":
        out: dict[str, Any] = {"passed": len(results) - len(failed), "failed": len(failed), "failures": [r.diff_text for r in failed]}
        if covered is not None:
            out["coverage"] = coverage_json(covered)
        print(json.dumps(out, indent=2))
    else:
        for result in failed:
            print(f"FAIL {result.diff_text}\n")
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
        if covered is not None:
            print(coverage_text(covered))
    return EXIT_FAILURE if failed else EXIT_OK


def cmd_policy_diff(args: argparse.Namespace) -> int:
    """Decide every point of the decision space under two policies; print what changes."""
    from gateway.config import load_config
    from gateway.legal.diff import Side, diff, text, to_json

    sides = []
    for path in (args.old, args.new):
        try:
            config = load_config(path)
        except ConfigError as error:
            if args.format == "json":
                print(json.dumps({"ok": False, "path": str(path), "findings": [{"path": f.path, "message": f.message} for f in error.findings]}, indent=2))
            else:
                for finding in error.findings:
                    print(f"{path}: {finding}", file=sys.stderr)
            return EXIT_INVALID
        sides.append(Side(config.legal, config.regions))
    result = diff(*sides)
    _emit(args, text(result), to_json(result))
    return EXIT_FAILURE if result.groups else EXIT_OK


def cmd_policy_prove(args: argparse.Namespace) -> int:
    """Decide every point of the policy's decision space and check its invariants; print counterexamples as decision cases."""
    from gateway.config import load_config
    from gateway.legal.invariants import prove, text, to_json
    from gateway.legal.space import Side

    path = args.path or args.config
    try:
        config = load_config(path)
    except ConfigError as error:
        if args.format == "json":
            print(json.dumps({"ok": False, "path": str(path), "findings": [{"path": f.path, "message": f.message} for f in error.findings]}, indent=2))
        else:
            for finding in error.findings:
                print(f"{path}: {finding}", file=sys.stderr)
        return EXIT_INVALID
    if not config.legal.invariants:
        print(f"{path}: no `[invariants.<id>]` tables: nothing to prove", file=sys.stderr)
        return EXIT_FAILURE
    result = prove(Side(config.legal, config.regions))
    _emit(args, text(result), to_json(result))
    return EXIT_OK if result.holds else EXIT_FAILURE


def _configure_logging(level: str, fmt: str = "text") -> None:
    """Log lines to stdout: readable text (the laptop default) or JSON lines with the request id (production)."""
    from gateway.logs import setup_logging

    setup_logging(level, fmt)
    logging.captureWarnings(True)  # Python warnings become log lines in the same format


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.web.app import create_app
    from gateway.web.drain import serve

    _configure_logging(args.log_level, args.log_format)
    s3_port = _s3_port(args)
    if getattr(args, "workers", 1) > 1:
        if s3_port is not None:
            from gateway.errors import InvalidRequest

            raise InvalidRequest("the S3 front is not supported with `--workers` yet; serve it from one process", code="invalid-arguments")
        return _serve_workers(args)
    settings = _settings(args, metrics_public=not args.metrics_auth, init_keys=not args.no_init_keys, sweep_seconds=args.sweep_seconds)
    app = create_app(settings)
    app.on_startup.append(_freeze_heap)  # runs after the runtime has opened
    fronts = []
    if s3_port is not None:
        fronts.append((_s3_front(args, app), s3_port))
    # SIGTERM or SIGINT: stop accepting, let requests in flight finish for --drain-seconds, close the runtime, exit 0
    reuse_port = getattr(args, "reuse_port", False)
    loop_name, loop_factory = event_loop(args.loop)
    logging.getLogger("gateway.serve").info("event loop: %s", loop_name, extra={"event": "serve.loop"})
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        announce = _announcer(args.log_format)
        runner.run(serve(app, host=args.host, port=args.port, drain_seconds=args.drain_seconds, announce=announce, reuse_port=reuse_port, fronts=fronts))
    if threading.active_count() > 1:
        # An S3 call given up at its deadline (the last ledger export, say) may still run in a worker
        # thread, which the interpreter would wait for at exit, for as long as botocore's own timeouts
        # allow. Everything to keep is closed and durable by now: end the process without that wait.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)
    return EXIT_OK


def _s3_port(args: argparse.Namespace) -> int | None:
    """The S3 front's port: ``--s3-port``, else ``[s3] port`` in regions.toml, else None (no front)."""
    if getattr(args, "s3_port", None) is not None:
        return int(args.s3_port)
    if not hasattr(args, "s3_port"):  # a command without the option (`demo`)
        return None
    from gateway.config import load_config

    return load_config(args.config).s3.port


def _s3_front(args: argparse.Namespace, app: Any) -> Any:
    """The S3 front app over ``app``'s runtime; its key is made here unless ``--no-init-keys``.

    Its buckets are regions.toml's ``[s3.buckets]``, each ``--s3-bucket`` added over them (a subject-routed
    bucket, replacing a configured one of the same name); with neither, one subject-routed bucket, ``records``."""
    from gateway.config import S3Bucket, load_config
    from gateway.errors import InvalidRequest
    from gateway.s3front.app import create_s3_app
    from gateway.s3front.credentials import S3_KEY_FILE, make_key

    if not args.no_init_keys:
        make_key(args.data_dir / S3_KEY_FILE)
    settings = load_config(args.config).s3
    buckets = dict(settings.buckets)
    for spec in args.s3_bucket or ([] if buckets else ["records"]):
        name, _, category = spec.partition("=")
        if not name:
            raise InvalidRequest(f"`--s3-bucket {spec}`: give NAME or NAME=CATEGORY", code="invalid-arguments")
        buckets[name] = S3Bucket(name, None, category or None)
    return create_s3_app(app, buckets, args.data_dir, virtual_host=settings.virtual_host)


def cmd_s3_credentials(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.s3front.credentials import S3_KEY_FILE, access_key_id, load_key, secret_for
    from gateway.tokens import check_caller

    config = load_config(args.config)
    caller = Caller(principal=args.service, role="service", service=args.service, region=args.region, purpose=args.purpose)
    check_caller(caller, config.regions.keys())
    key = load_key(args.data_dir / S3_KEY_FILE)
    expires = int(system_clock().timestamp()) + (args.ttl or config.identity.token_ttl_seconds)
    access = access_key_id(key, caller, expires)
    print(f"AWS_ACCESS_KEY_ID={access}\nAWS_SECRET_ACCESS_KEY={secret_for(key, access)}\nAWS_DEFAULT_REGION={args.region}")
    return EXIT_OK


def cmd_s3_abort_uploads(args: argparse.Namespace) -> int:
    """Abort the multipart uploads begun more than ``--older-than`` hours ago, in every region (see ``ObjectService.abort_older``)."""
    from datetime import timedelta

    from gateway.runtime import Runtime
    from gateway.services.objects import ObjectService

    async def run() -> list[Any]:
        rt = await Runtime.open(_settings(args, init_keys=False))
        try:
            return await ObjectService(rt.records).abort_older(timedelta(hours=args.older_than), by=args.by)
        finally:
            await rt.close(export_seconds=rt.settings.shutdown_export_seconds)

    aborted = asyncio.run(run())
    uploads = [{"upload": u.id, "key": u.key, "initiated": u.initiated} for u in aborted]
    _emit(args, f"aborted {len(aborted)} multipart uploads begun more than {args.older_than:g} hours ago", {"aborted": uploads})
    return EXIT_OK


def _serve_workers(args: argparse.Namespace) -> int:
    """``serve --workers N``: check the configuration and make missing keys once, then run and supervise N workers.

    Each worker is ``gateway serve`` with the same options, its own chain id
    (``<chain>-w<n>``) and the port shared (``gateway.web.workers``).
    """
    import shutil
    import tempfile

    from gateway.config import load_config
    from gateway.runtime import init_keys
    from gateway.web.workers import Worker, environment, supervise, worker_chain

    config = load_config(args.config)  # a broken configuration stops here, once, not in every worker
    if not args.no_init_keys:
        for made in init_keys(config, args.data_dir):
            logging.getLogger("gateway.runtime").warning("generated a development key for %s", made)
    base = _chain_id(args)
    common = [sys.executable, "-m", "gateway", "serve", "--config", str(args.config), "--data-dir", str(args.data_dir)]
    common += ["--host", args.host, "--port", str(args.port), "--log-level", args.log_level, "--log-format", args.log_format]
    common += ["--loop", args.loop, "--drain-seconds", str(args.drain_seconds), "--sweep-seconds", str(args.sweep_seconds), "--no-init-keys", "--reuse-port"]
    common += ["--metrics-auth"] if args.metrics_auth else []
    workers = [Worker(n, worker_chain(base, n), [*common, "--chain-id", worker_chain(base, n)]) for n in range(1, args.workers + 1)]
    metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
    try:
        return asyncio.run(supervise(workers, env=environment(metrics_dir), metrics_dir=metrics_dir))
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _workers_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"`{text}` is not a number of workers from 1 to 64")
    return value


def _announcer(log_format: str) -> Any:
    """How the address the server listens on is told: aiohttp's banner for people, one log line in JSON mode
    (a plain banner in a JSON stream breaks every log shipper reading it)."""
    if log_format != "json":
        return lambda line: print(line, flush=True)
    listening = logging.getLogger("gateway.serve")
    return lambda line: listening.info(line.splitlines()[0].strip("= "), extra={"event": "serve.listening"})


async def _freeze_heap(_: object) -> None:
    """Move what start-up loaded (config, compiled policy, keys, modules) out of the garbage collector's way.

    Those objects live as long as the process; frozen, they are not traversed by
    every later collection, which otherwise shows as latency spikes on requests.
    """
    import gc

    gc.collect()
    gc.freeze()


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.demo import seed, write_demo_orders
    from gateway.runtime import Runtime, init_keys

    _configure_logging(args.log_level, args.log_format)
    settings = _settings(args)
    config = load_config(args.config)
    init_keys(config, args.data_dir, demo_authorities=True)

    async def load() -> int:
        rt = await Runtime.open(settings)
        try:
            return await seed(rt.records)
        finally:
            await rt.close(export_seconds=rt.settings.shutdown_export_seconds)

    written = asyncio.run(load())
    orders = write_demo_orders(config, args.data_dir, system_clock())
    print(demo_tour(args, written, orders), flush=True)
    return cmd_serve(args)


def gateway_command() -> str:
    """How to run this gateway from another shell, whether or not its virtualenv is activated."""
    beside = Path(sys.executable).with_name("gateway")
    return shlex.quote(str(beside)) if beside.exists() else f"{shlex.quote(sys.executable)} -m gateway"


def demo_tour(args: argparse.Namespace, written: int, orders: dict[str, tuple[Path, str]]) -> str:
    """The demo's printed tour: commands to paste into another shell."""
    base = f"http://{args.host}:{args.port}"
    opts = f"--config {shlex.quote(str(args.config))} --data-dir {shlex.quote(str(args.data_dir))}"
    gateway = gateway_command()
    loaded = f"loaded ({written} records written)" if written else "already loaded (the records written before are kept)"
    return f"""
Demo data {loaded}: 5 subjects, one per region (alice us-east-1, aoife eu-west-1,
klaus eu-central-1, oliver eu-west-2, mia ap-southeast-2). Try, in another shell:

  US=$({gateway} token issue --service billing --region us-east-1 --purpose billing {opts})
  ADS=$({gateway} token issue --service analytics --region us-east-1 --purpose analytics {opts})
  EU=$({gateway} token issue --service support --region eu-west-1 --purpose support {opts})

  curl -s {base}/v1/subjects/alice/records/profile -H "Authorization: Bearer $US"        # 200, same jurisdiction
  curl -s {base}/v1/subjects/klaus/records/inbox-0001 -H "Authorization: Bearer $EU"     # 200, EU free flow
  curl -s {base}/v1/subjects/aoife/records/profile -H "Authorization: Bearer $US"        # 200, EU-US DPF covers billing
  curl -s {base}/v1/subjects/aoife/records/profile -H "Authorization: Bearer $ADS"       # 451, no mechanism covers analytics
  curl -s {base}/v1/subjects/aoife/records -H "Authorization: Bearer $EU"                # record metadata

Example legal orders, signed by the demo authorities, are in {args.data_dir}/demo-orders/:
{chr(10).join(f"  {path.name}" for path, _ in orders.values())}

  INTAKE=$({gateway} token issue --role intake --subject portal {opts})
  LEGAL=$({gateway} token issue --role legal --subject counsel-1 {opts})
  curl -s -X POST {base}/v1/orders -H "Authorization: Bearer $INTAKE" -H 'Content-Type: application/jose' \\
       --data-binary @{args.data_dir}/demo-orders/us-warrant-alice.jws                # 201, disclose
  curl -s -o package.tar {base}/v1/orders/{orders["us-warrant-alice"][1]}/package -H "Authorization: Bearer $INTAKE"
  {gateway} package verify package.tar {opts}
  {gateway} explain {args.data_dir}/demo-orders/us-warrant-aoife.jws {opts}              # legal-review, with the trace

The legal console is at {base}/console/: sign in by pasting the legal token (`echo $LEGAL`).
"""


# --- parser ----------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, exiting with ``EXIT_USAGE`` on a usage error instead of its 2 (the exit code of a refused decision)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from gateway import __version__

    parser = _Parser(prog="gateway", description="Data-residency-aware disclosure gateway.")
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, func: Any, parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text)
        _common(p)
        p.set_defaults(func=func)
        return p

    for name, help_text, func in (
        ("serve", "run the gateway (local folders, dev keys when given nothing)", cmd_serve),
        ("demo", "load demo subjects and records, print a curl tour, and serve", cmd_demo),
    ):
        p = command(name, help_text, func)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8080)
        p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
        p.add_argument(
            "--log-format",
            default=os.environ.get("GATEWAY_LOG_FORMAT", "text"),
            choices=("text", "json"),
            help="log lines as readable text (default) or JSON with request ids (default: $GATEWAY_LOG_FORMAT or text)",
        )
        p.add_argument("--metrics-auth", action="store_true", help="require an ops token on /metrics")
        p.add_argument(
            "--loop",
            default=os.environ.get("GATEWAY_LOOP", "auto"),
            choices=LOOPS,
            help="the event loop: uvloop, asyncio's own, or auto: uvloop when it is installed (default: $GATEWAY_LOOP or auto)",
        )
        p.add_argument(
            "--drain-seconds",
            type=_non_negative_seconds,
            default=os.environ.get("GATEWAY_DRAIN_SECONDS", "20"),
            help="on SIGTERM, how long requests in flight may take to finish before they are cancelled; keep it below the pod's "
            "grace period minus its preStop delay (default: $GATEWAY_DRAIN_SECONDS or 20)",
        )
        p.add_argument(
            "--sweep-seconds",
            type=_non_negative_seconds,
            default=os.environ.get("GATEWAY_SWEEP_SECONDS", "30"),
            help="how often due holds are lifted, cases released or expired, notices queued, expired console sessions cleared "
            "and order items waiting for a peer gateway asked for again; "
            "every replica may sweep, each change is made once; 0 turns the sweeper off (default: $GATEWAY_SWEEP_SECONDS or 30)",
        )
        p.add_argument(
            "--no-init-keys",
            action="store_true",
            help="never create missing keys: production keys come from a secret store; a missing one stops the start",
        )
        _chain_option(p)
        if name == "serve":
            p.add_argument(
                "--workers",
                type=_workers_arg,
                default=1,
                help="worker processes sharing the port (SO_REUSEPORT), each with its own ledger chain, CHAIN-w1, CHAIN-w2...; the parent "
                "restarts a worker that dies and passes SIGTERM on to each (default: 1, this process serves)",
            )
            p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # set for each worker by the parent
        p.add_argument("--s3-port", type=int, help="also serve the S3 front (path-style S3 API) on this port")
        p.add_argument(
            "--s3-bucket",
            action="append",
            metavar="NAME[=CATEGORY]",
            help="a bucket of the S3 front, with the category of objects put without x-amz-meta-category (repeatable; default: `records`)",
        )

    p = command("check", "validate a regions.toml; print every problem with its key path", cmd_check)
    p.add_argument("path", nargs="?", type=Path, help="file to check (default: --config)")

    keys = sub.add_parser("keys", help="key management").add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    command("init", "create every key the configuration names that does not exist yet", cmd_keys_init, keys)

    token = sub.add_parser("token", help="tokens").add_subparsers(dest="token_command", required=True, metavar="ACTION")
    p = command("issue", "issue a bearer token for a service, intake, legal or ops", cmd_token_issue, token)
    p.add_argument("--service", help="service name (service tokens)")
    p.add_argument("--region", help="the calling service's region (service tokens)")
    p.add_argument("--purpose", help="declared processing purpose (service tokens)")
    p.add_argument("--role", choices=ROLES, help="role for people and systems")
    p.add_argument("--subject", help="who the token is for (required for intake, legal and ops)")
    p.add_argument("--ttl", type=int, help="lifetime in seconds (default: identity.token_ttl_seconds)")

    s3 = sub.add_parser("s3", help="the S3 front").add_subparsers(dest="s3_command", required=True, metavar="ACTION")
    p = command("credentials", "print S3 credentials (AWS_ACCESS_KEY_ID=..., AWS_SECRET_ACCESS_KEY=...) for a service", cmd_s3_credentials, s3)
    p.add_argument("--service", required=True, help="service name")
    p.add_argument("--region", required=True, help="the calling service's region")
    p.add_argument("--purpose", required=True, help="declared processing purpose")
    p.add_argument("--ttl", type=int, help="lifetime in seconds (default: identity.token_ttl_seconds)")
    p = command("abort-uploads", "abort the multipart uploads begun more than --older-than hours ago, in every region", cmd_s3_abort_uploads, s3)
    p.add_argument("--older-than", type=float, required=True, help="age in hours")
    p.add_argument("--by", required=True, help="who aborts them (the operator, named in the ledger)")

    policy = sub.add_parser("policy", help="the legal policy").add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    p = command("test", "decide every case in the given files or folders and compare with its expectation", cmd_policy_test, policy)
    p.add_argument("paths", nargs="+", type=Path, help="case files (*.toml) or folders of them")
    p.add_argument("--coverage", action="store_true", help="also list the rules and configuration entries the cases exercise, and those none does")
    p = command("diff", "decide every point of the decision space under two policies and list what changes (exit 1)", cmd_policy_diff, policy)
    p.add_argument("old", type=Path, help="the policy as it is (a regions.toml)")
    p.add_argument("new", type=Path, help="the policy as proposed")
    p = command("prove", "check the policy's invariants at every point of its decision space; counterexamples as cases (exit 1)", cmd_policy_prove, policy)
    p.add_argument("path", nargs="?", type=Path, help="the policy file (default: --config)")

    subjects = sub.add_parser("subjects", help="subjects' stored facts").add_subparsers(dest="subjects_command", required=True, metavar="ACTION")
    p = command("resign", "sign stored subject profiles that fail verification, as they stand (check them first); ledgered", cmd_subjects_resign, subjects)
    p.add_argument("subjects", nargs="*", help="subject ids")
    p.add_argument("--all", action="store_true", help="every subject in every region (those already signed are left alone)")
    p.add_argument("--by", help="the operator's name for the ledger (default: $USER)")
    _chain_option(p, suffix=ADMIN_CHAIN_SUFFIX)
    p = command("index", "give every stored subject its home claim in the control store, then look subjects up by claim only", cmd_subjects_index, subjects)
    _chain_option(p, suffix=ADMIN_CHAIN_SUFFIX)

    order = sub.add_parser("order", help="legal orders").add_subparsers(dest="order_command", required=True, metavar="ACTION")
    p = command("sign", "sign a JSON claims file as an authority (compact JWS on stdout)", cmd_order_sign, order)
    p.add_argument("--authority-key", type=Path, required=True, help="the authority's private key (Ed25519 or P-256 PEM)")
    p.add_argument("--claims", type=Path, required=True, help="JSON claims; iat/exp/nbf may be RFC 3339 times")
    p.add_argument("--kid", help="signing authority id (default: the `iss` claim)")

    p = command("explain", "decide an order without acting and print the trace; exit 2 unless all is disclosed", cmd_explain)
    p.add_argument("order", type=Path, help="file with the compact JWS, or - for stdin")
    p.add_argument("--at", help="decide as if the order were served at this RFC 3339 time (default: now); `exp` is checked against it")

    package = sub.add_parser("package", help="disclosure packages").add_subparsers(dest="package_command", required=True, metavar="ACTION")
    p = command("verify", "check a package's signature and every record's hash, offline", cmd_package_verify, package)
    p.add_argument("package", type=Path)
    p.add_argument("--key", type=Path, help="the provider's public key (default: from the config's identity.provider_key)")

    from gateway.remote import add_commands

    add_commands(sub, command)  # orders and cases, through a running gateway's HTTP API

    audit = sub.add_parser("audit", help="the audit ledger").add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    p = command(
        "verify",
        "verify every ledger chain's hashes, signed heads and checkpoints, chain by chain; exit 3 if any chain is broken or unsigned",
        cmd_audit_verify,
        audit,
    )
    p.add_argument("--ledger", type=Path, help="one chain's file (default: every DATA_DIR/ledger/<chain>.jsonl)")
    p.add_argument("--key", type=Path, help="the provider's public key (default: from the config's identity.provider_key)")
    p.add_argument(
        "--remote",
        action="store_true",
        help="also verify every chain in the `[audit] export` bucket: those here against their segments, the others from their segments alone",
    )

    p = command(
        "reconcile",
        "settle the write intents without an outcome of one chain against the stores, once; exit 1 if a region could not be read",
        cmd_audit_reconcile,
        audit,
    )
    _chain_option(p)

    report = sub.add_parser("report", help="reports").add_subparsers(dest="report_command", required=True, metavar="ACTION")
    p = report.add_parser("transparency", help="requests per issuing country and half-year", conflict_handler="resolve")
    p.description = "the transparency report: legal orders per issuing country and half-year, from the audit ledger"
    _common(p)
    p.set_defaults(func=cmd_report_transparency)
    p.add_argument("--format", choices=("json", "csv", "html"), default="json", help="output format (default: json)")
    p.add_argument("--from", dest="start", required=True, help="first day, e.g. 2026-01-01")
    p.add_argument("--to", dest="end", required=True, help="last day (included), e.g. 2026-12-31")
    p.add_argument("--output", type=Path, help="write to this file instead of stdout")
    p.add_argument(
        "--ledger", type=Path, help="one chain's file (default: every DATA_DIR/ledger/<chain>.jsonl and, with `[audit] export`, every chain in its bucket)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # so that a reader gone away (`| head`) is met here, not at exit
        return code
    except BrokenPipeError:
        # The reader closed the pipe: say nothing more, and keep Python's own flush at exit quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except (ConfigError, LedgerBroken) as error:
        print(error.diagnostics() if isinstance(error, ConfigError) else f"{error.code}: {error.message}", file=sys.stderr)
        return EXIT_INVALID
    except KeyFileError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        return EXIT_FAILURE
    except GatewayError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
