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
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError, GatewayError, KeyFileError, LedgerBroken
from gateway.keys import load_private_key, resolve
from gateway.model import ROLES, Caller, system_clock

EXIT_OK, EXIT_FAILURE, EXIT_DECISION, EXIT_INVALID = 0, 1, 2, 3


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

    return Settings(config_path=args.config, data_dir=args.data_dir, **overrides)


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
            "give `--service NAME --region R --purpose P` for a service, or `--role intake|legal|ops --subject NAME`", code="invalid-arguments"
        )
    check_caller(caller, config.regions.keys())
    key = load_private_key(resolve(args.data_dir, config.identity.token_private_key))
    ttl = timedelta(seconds=args.ttl) if args.ttl else None
    print(issue_token(caller, key=key, identity=config.identity, now=system_clock(), ttl=ttl))
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from gateway.audit import verify_file

    path = args.ledger or _settings(args).ledger_path
    if not path.exists():
        raise LedgerBroken(f"ledger `{path}` does not exist")
    report = verify_file(path)
    data = {
        "ok": report.ok,
        "entries": report.entries,
        "last_seq": report.last_seq,
        "last_hash": report.last_hash,
        "problem": report.problem,
        "broken_at": report.broken_at,
        "torn_tail": report.torn_tail,
    }
    if report.ok:
        _emit(args, f"ok: {report.entries} entries, last hash {report.last_hash}", data)
        return EXIT_OK
    _emit(args, f"broken: {report.problem} (line {report.broken_at}); {report.entries} entries verify before it", data)
    return EXIT_INVALID


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

    token = _read_order(args.order)
    at = parse_time(args.at) if args.at else None

    async def run() -> dict[str, Any]:
        rt = await Runtime.open(_settings(args, init_keys=False), read_only=True)
        try:
            return await rt.orders.explain(token, at=at)
        finally:
            await rt.close()

    try:
        document = asyncio.run(run())
    except OrderRejected as rejected:
        data = {"outcome": "refuse", "reasons": [{"code": rejected.code, "rule": rejected.rule, "detail": rejected.message}]}
        _emit(args, f"refuse: {rejected.code} ({rejected.rule}): {rejected.message}", data)
        return EXIT_DECISION
    if args.format == "json":
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(f"order {document['id']} from {document['authority']} ({document['instrument']})")
        for item in document["items"]:
            reason = item["reasons"][0]
            print(f"  {item['subject']} / {item['region'] or '-'} / {item['category']}: {item['outcome']} ({reason['code']}, {item['rule']})")
        print("trace:")
        for line in document["trace"]:
            print(f"  {line}")
    return EXIT_OK if document["items"] and all(i["outcome"] == "disclose" for i in document["items"]) else EXIT_DECISION


def cmd_package_verify(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.keys import load_ed25519_public, public_path_for
    from gateway.packages import verify_package

    if args.key is not None:
        key_path = args.key
    else:
        key_path = public_path_for(resolve(args.data_dir, load_config(args.config).identity.provider_key))
    report = verify_package(args.package, load_ed25519_public(key_path))
    data = {"ok": report.ok, "order": report.order, "records": report.records, "problems": list(report.problems)}
    if report.ok:
        _emit(args, f"ok: package for order {report.order}, {report.records} records, signature and hashes verify", data)
        return EXIT_OK
    _emit(args, "broken:\n" + "\n".join(f"  {p}" for p in report.problems), data)
    return EXIT_FAILURE


def cmd_policy_test(args: argparse.Namespace) -> int:
    """Run decision cases against the configured rules; on failure print expected versus actual."""
    from gateway.config import load_config
    from gateway.legal.cases import CaseFileError, load_cases, run_case
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
    if args.format == "json":
        print(json.dumps({"passed": len(results) - len(failed), "failed": len(failed), "failures": [r.diff_text for r in failed]}, indent=2))
    else:
        for result in failed:
            print(f"FAIL {result.diff_text}\n")
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return EXIT_FAILURE if failed else EXIT_OK


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from gateway.web.app import create_app

    _configure_logging(args.log_level)
    settings = _settings(args, metrics_public=not args.metrics_auth)
    web.run_app(create_app(settings), host=args.host, port=args.port, print=lambda line: print(line, flush=True))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.demo import seed, write_demo_orders
    from gateway.runtime import Runtime, init_keys

    _configure_logging(args.log_level)
    settings = _settings(args)
    config = load_config(args.config)
    init_keys(config, args.data_dir, demo_authorities=True)

    async def load() -> int:
        rt = await Runtime.open(settings)
        try:
            return await seed(rt.records)
        finally:
            await rt.close()

    written = asyncio.run(load())
    orders = write_demo_orders(config, args.data_dir, system_clock())
    base = f"http://{args.host}:{args.port}"
    opts = f"--config {args.config} --data-dir {args.data_dir}"
    print(
        f"""
Demo data: {written} records for 5 subjects, one per region (alice us-east-1, aoife eu-west-1,
klaus eu-central-1, oliver eu-west-2, mia ap-southeast-2). Try, in another shell:

  US=$(gateway token issue --service billing --region us-east-1 --purpose billing {opts})
  ADS=$(gateway token issue --service analytics --region us-east-1 --purpose analytics {opts})
  EU=$(gateway token issue --service support --region eu-west-1 --purpose support {opts})

  curl -s {base}/v1/subjects/alice/records/profile -H "Authorization: Bearer $US"        # 200, same jurisdiction
  curl -s {base}/v1/subjects/klaus/records/inbox-0001 -H "Authorization: Bearer $EU"     # 200, EU free flow
  curl -s {base}/v1/subjects/aoife/records/profile -H "Authorization: Bearer $US"        # 200, EU-US DPF covers billing
  curl -s {base}/v1/subjects/aoife/records/profile -H "Authorization: Bearer $ADS"       # 451, no mechanism covers analytics
  curl -s {base}/v1/subjects/aoife/records -H "Authorization: Bearer $EU"                # record metadata

Example legal orders, signed by the demo authorities, are in {args.data_dir}/demo-orders/:
{chr(10).join(f"  {path.name}" for path, _ in orders.values())}

  INTAKE=$(gateway token issue --role intake --subject portal {opts})
  LEGAL=$(gateway token issue --role legal --subject counsel-1 {opts})
  curl -s -X POST {base}/v1/orders -H "Authorization: Bearer $INTAKE" -H 'Content-Type: application/jose' \\
       --data-binary @{args.data_dir}/demo-orders/us-warrant-alice.jws                # 201, disclose
  curl -s -o package.tar {base}/v1/orders/{orders["us-warrant-alice"][1]}/package -H "Authorization: Bearer $INTAKE"
  gateway package verify package.tar {opts}
  gateway explain {args.data_dir}/demo-orders/us-warrant-aoife.jws {opts}              # legal-review, with the trace
""",
        flush=True,
    )
    return cmd_serve(args)


# --- parser ----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Data-residency-aware disclosure gateway.")
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
        p.add_argument("--metrics-auth", action="store_true", help="require an ops token on /metrics")

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

    policy = sub.add_parser("policy", help="the legal policy").add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    p = command("test", "decide every case in the given files or folders and compare with its expectation", cmd_policy_test, policy)
    p.add_argument("paths", nargs="+", type=Path, help="case files (*.toml) or folders of them")

    order = sub.add_parser("order", help="legal orders").add_subparsers(dest="order_command", required=True, metavar="ACTION")
    p = command("sign", "sign a JSON claims file as an authority (compact JWS on stdout)", cmd_order_sign, order)
    p.add_argument("--authority-key", type=Path, required=True, help="the authority's private key (Ed25519 or P-256 PEM)")
    p.add_argument("--claims", type=Path, required=True, help="JSON claims; iat/exp/nbf may be RFC 3339 times")
    p.add_argument("--kid", help="signing authority id (default: the `iss` claim)")

    p = command("explain", "decide an order without acting and print the trace; exit 2 unless all is disclosed", cmd_explain)
    p.add_argument("order", type=Path, help="file with the compact JWS, or - for stdin")
    p.add_argument("--at", help="decide as at this RFC 3339 time (default: now)")

    package = sub.add_parser("package", help="disclosure packages").add_subparsers(dest="package_command", required=True, metavar="ACTION")
    p = command("verify", "check a package's signature and every record's hash, offline", cmd_package_verify, package)
    p.add_argument("package", type=Path)
    p.add_argument("--key", type=Path, help="the provider's public key (default: from the config's identity.provider_key)")

    audit = sub.add_parser("audit", help="the audit ledger").add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    p = command("verify", "verify the ledger's hash chain; exit 3 at the first broken entry", cmd_audit_verify, audit)
    p.add_argument("--ledger", type=Path, help="ledger file (default: DATA_DIR/ledger/ledger.jsonl)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
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
