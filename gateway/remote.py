"""Commands that act through a running gateway's HTTP API: ``orders submit|show|package`` and ``cases list|show|approve|deny``.

They are for intake and legal people and their scripts, and make the same
calls as any other client: every check, decision and ledger entry is the
server's. The bearer token comes from ``--token`` or ``$GATEWAY_TOKEN`` (the
environment keeps it out of ``ps`` and shell history); it is sent only to
``--url`` (redirects are never followed) and never printed.

Exit codes: 0 ok; 2 a decision other than disclose (``orders submit``: an item
not disclosed, or the order refused); 1 anything else that went wrong (the
gateway unreachable, a 5xx, a 4xx problem document, printed as ``code: detail``
on stderr, or a package that does not verify); 64 a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError

EXIT_OK, EXIT_FAILURE, EXIT_DECISION, EXIT_USAGE = 0, 1, 2, 64
DEFAULT_URL = "http://127.0.0.1:8080"
CHUNK = 256 * 1024


class RemoteError(GatewayError):
    """The gateway could not be reached, or answered with an error: ``code`` is the problem document's when it sent one."""

    code = "gateway-error"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, document: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.document = document


class UsageError(Exception):
    """Arguments that cannot make a request (no token, a URL that is not http(s), an id that is not one)."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise RemoteError(f"the gateway answered {self.status} with a body that is not JSON", code="bad-answer") from None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as an error: following it would send the bearer token wherever it points."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


class Gateway:
    """One gateway's HTTP API, with one caller's token."""

    def __init__(self, url: str, token: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query or parts.fragment:
            raise UsageError(f"`--url` must be the gateway's http:// or https:// address, like {DEFAULT_URL}, not `{url}`")
        self.base = url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects)

    @contextlib.contextmanager
    def open(self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None) -> Iterator[http.client.HTTPResponse]:
        """The response to a request; an error answer or no answer is a ``RemoteError``."""
        request = urllib.request.Request(self.base + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json, application/problem+json, application/x-tar")
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            response = self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            with error:
                raise _problem(error.code, error.headers, error.read(), error.headers.get("Location")) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RemoteError(
                f"cannot reach the gateway at `{self.base}`: {reason}; check `--url` or $GATEWAY_URL", code="gateway-unreachable"
            ) from None
        with response:
            yield response

    def call(self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None) -> Answer:
        with self.open(method, path, body=body, content_type=content_type) as response:
            try:
                return Answer(response.status, response.headers, response.read())
            except (http.client.HTTPException, OSError):
                raise RemoteError("the gateway's answer was cut short", code="answer-incomplete") from None

    def json(self, method: str, path: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        return self.call(method, path, body=body, content_type="application/json" if body is not None else None).json()


def _problem(status: int, headers: Any, body: bytes, location: str | None) -> RemoteError:
    """The error answer as a ``RemoteError``: the problem document's code and detail when there is one."""
    if 300 <= status < 400:
        return RemoteError(
            f"the gateway answered {status} redirecting to `{location or '?'}`, which is not followed (it would carry the token there);"
            " point `--url` at the gateway itself",
            code="redirect-refused",
        )
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("code"), str):
        detail = str(document.get("detail") or document.get("title") or f"HTTP {status}")
        return RemoteError(detail, code=document["code"], status=status, document=document)
    return RemoteError(f"the gateway answered HTTP {status} without a problem document", code=f"http-{status}", status=status)


def _segment(value: str, what: str) -> str:
    """``value`` as one path segment; ``.``, ``..`` and empty ids would reach another route."""
    if value in ("", ".", "..") or len(value) > 256:
        raise UsageError(f"`{value}` is not {what}")
    return urllib.parse.quote(value, safe="")


def _query(**params: str | int | None) -> str:
    given = {k: v for k, v in params.items() if v is not None}
    return "?" + urllib.parse.urlencode(given) if given else ""


def _gateway(args: argparse.Namespace) -> Gateway:
    token = args.token or os.environ.get("GATEWAY_TOKEN")
    if not token:
        raise UsageError("give a bearer token: set $GATEWAY_TOKEN (kept out of `ps` and shell history) or pass `--token`")
    token = token.strip()
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        raise UsageError("the bearer token holds spaces or control characters; give the token alone")
    return Gateway(args.url, token, args.timeout)


def _emit(args: argparse.Namespace, text: str, data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if args.format == "json" else text)


def _command(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Usage errors found after parsing exit 64, like the parser's own."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except UsageError as error:
            print(f"gateway: error: {error}", file=sys.stderr)
            return EXIT_USAGE

    run.__name__, run.__doc__ = func.__name__, func.__doc__
    return run


# --- orders -------------------------------------------------------------------


def _item_line(item: dict[str, Any]) -> str:
    reasons = item.get("reasons") or [{}]
    line = f"  {item.get('subject')} / {item.get('region') or '-'} / {item.get('category')}: {item.get('outcome')}"
    line += f" ({reasons[0].get('code', '?')}, {item.get('rule', '?')})"
    if item.get("state"):
        line += f", {item['state']}"
    if item.get("case"):
        line += f", case {item['case']}"
    return line


def _document_text(document: dict[str, Any], heading: str) -> str:
    lines = [f"order {document.get('id')} from {document.get('authority')} ({document.get('instrument')}): {heading}"]
    lines += [_item_line(item) for item in document.get("items", [])]
    return "\n".join(lines)


def _all_disclosed(document: dict[str, Any]) -> bool:
    items = document.get("items") or []
    return bool(items) and all(item.get("outcome") == "disclose" for item in items)


@_command
def cmd_orders_submit(args: argparse.Namespace) -> int:
    """Submit a signed order as intake; print its decision; exit 2 unless every item is disclosed."""
    from gateway.cli import _read_order

    order = _read_order(args.order)
    gateway = _gateway(args)
    try:
        answer = gateway.call("POST", "/v1/orders", body=order.encode("ascii"), content_type="application/jose")
    except RemoteError as error:
        document = error.document
        if document is None or document.get("outcome") != "refuse":
            raise
        reason = (document.get("reasons") or [{}])[0]
        _emit(args, f"refuse: {error.code} ({reason.get('rule', '?')}): {error.message}", document)
        return EXIT_DECISION
    document = answer.json()
    heading = "decided" if answer.status == 201 else "already decided (an identical resubmission)"
    _emit(args, _document_text(document, heading), document)
    return EXIT_OK if _all_disclosed(document) else EXIT_DECISION


@_command
def cmd_orders_show(args: argparse.Namespace) -> int:
    """The decision document as it stands now."""
    gateway = _gateway(args)
    document = gateway.json("GET", f"/v1/orders/{_segment(args.id, 'an order id')}{_query(authority=args.authority)}")
    _emit(args, _document_text(document, "as it stands now"), document)
    return EXIT_OK


def _provider_key(args: argparse.Namespace) -> Any:
    """The provider's public key to verify packages with: ``--key``, else the config's ``identity.provider_key``."""
    from gateway.config import load_config
    from gateway.keys import load_ed25519_public, public_path_for, resolve

    if args.key is not None:
        return load_ed25519_public(args.key)
    if not args.config.exists():
        raise UsageError(f"no provider public key to verify the package with: pass `--key FILE` (there is no `{args.config}` to find it from)")
    return load_ed25519_public(public_path_for(resolve(args.data_dir, load_config(args.config).identity.provider_key)))


@_command
def cmd_orders_package(args: argparse.Namespace) -> int:
    """Download an order's disclosure package to ``-o FILE``, verified: written there only when whole and verified."""
    from gateway.packages import verify_package

    out: Path = args.output
    key = _provider_key(args)  # before downloading: a package that cannot be verified is never written
    if not out.parent.is_dir():
        raise UsageError(f"folder `{out.parent}` does not exist")
    gateway = _gateway(args)
    path = f"/v1/orders/{_segment(args.id, 'an order id')}/package{_query(authority=args.authority)}"
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    partial = Path(name)
    try:
        # (1) stream to a temporary file beside the target, checking the length the gateway announced
        with os.fdopen(fd, "wb") as file, gateway.open("GET", path) as response:
            announced = response.headers.get("Content-Length")
            expected = int(announced) if announced and announced.isdigit() else None
            received = 0
            try:
                while chunk := response.read(CHUNK):
                    file.write(chunk)
                    received += len(chunk)
            except (http.client.HTTPException, OSError):
                raise RemoteError(
                    f"the package arrived incomplete ({received} bytes); nothing was written to `{out}`", code="package-incomplete"
                ) from None
            if expected is not None and received != expected:
                raise RemoteError(
                    f"the package arrived incomplete ({received} of {expected} bytes); nothing was written to `{out}`", code="package-incomplete"
                )
            file.flush()
            os.fsync(file.fileno())
        # (2) verify it offline, as `gateway package verify` does
        report = verify_package(partial, key)
        data = {"ok": report.ok, "order": report.order, "records": report.records, "problems": list(report.problems), "withheld": report.withheld}
        if not report.ok:
            data["output"] = None
            _emit(args, "broken: the package does not verify; nothing was written to `" + str(out) + "`\n" + "\n".join(f"  {p}" for p in report.problems), data)
            return EXIT_FAILURE
        # (3) only a whole, verified package takes the name
        os.replace(partial, out)
        data["output"] = str(out)
        text = f"ok: wrote {out}: package for order {report.order}, {report.records} records, signature and hashes verify"
        text += "".join(f"\n  withheld: {w['path']} ({w['reason']}: {w['detail']})" for w in report.withheld)
        _emit(args, text, data)
        return EXIT_OK
    finally:
        partial.unlink(missing_ok=True)


# --- cases --------------------------------------------------------------------


def _case_line(case: dict[str, Any]) -> str:
    return (
        f"{case.get('id')}  {case.get('state', '?'):<9} deadline {case.get('deadline') or '-'}  {case.get('region')}"
        f"  {case.get('instrument')}  order {case.get('order')}  subject {case.get('subject')}"
    )


@_command
def cmd_cases_list(args: argparse.Namespace) -> int:
    """The review queue, every page (or the first ``--limit`` cases), in the queue's order."""
    gateway = _gateway(args)
    cases: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        want = args.page_size if args.limit is None else min(args.page_size, args.limit - len(cases))
        query = _query(
            state=args.state, jurisdiction=args.jurisdiction, region=args.region, instrument=args.instrument, limit=want, cursor=cursor
        )
        page = gateway.json("GET", f"/v1/cases{query}")
        cases += page.get("cases", [])
        cursor = page.get("next_cursor")
        if cursor is None or (args.limit is not None and len(cases) >= args.limit):
            break
    more = cursor is not None
    text = "\n".join(_case_line(c) for c in cases) or "no cases"
    if more:
        text += f"\n(first {len(cases)}; more follow)"
    _emit(args, text, {"cases": cases, "more": more})
    return EXIT_OK


@_command
def cmd_cases_show(args: argparse.Namespace) -> int:
    """One case: the order, the decision, deadline, approvals and history."""
    gateway = _gateway(args)
    case = gateway.json("GET", f"/v1/cases/{_segment(args.id, 'a case id')}")
    _emit(args, _case_text(case), case)
    return EXIT_OK


def _case_text(case: dict[str, Any]) -> str:
    reasons = case.get("reasons") or [{}]
    lines = [
        f"case {case.get('id')} ({case.get('kind')}): {case.get('state')}",
        f"  order {case.get('order')} from {case.get('authority')} ({case.get('instrument')}), submitted by {case.get('submitted_by')}",
        f"  subject {case.get('subject')} in {case.get('region')}, categories {', '.join(case.get('categories') or [])}",
        f"  decision {case.get('outcome')} ({reasons[0].get('code', '?')}, {case.get('rule')}), deadline {case.get('deadline') or '-'}",
        f"  assignee {case.get('assignee') or '-'}",
    ]
    lines += [f"  {a.get('decision')} by {a.get('by')} at {a.get('at')}: {a.get('justification')}" for a in case.get("approvals") or []]
    lines += [f"  history {h.get('at')} {h.get('by')}: {h.get('action')}" for h in case.get("history") or []]
    return "\n".join(lines)


def _decide(args: argparse.Namespace, decision: str) -> int:
    gateway = _gateway(args)
    body: dict[str, Any] = {"decision": decision, "justification": args.justification}
    if getattr(args, "categories", None):
        body["categories"] = [c.strip() for c in args.categories.split(",") if c.strip()]
    case = gateway.json("POST", f"/v1/cases/{_segment(args.id, 'a case id')}/approvals", body)
    _emit(args, f"{decision} recorded; case {case.get('id')} is now {case.get('state')}", case)
    return EXIT_OK


@_command
def cmd_cases_approve(args: argparse.Namespace) -> int:
    """Approve a case (two different lawyers approve before data is released)."""
    return _decide(args, "approve")


@_command
def cmd_cases_deny(args: argparse.Namespace) -> int:
    """Deny a case with a written reason (one denial refuses the items)."""
    return _decide(args, "deny")


# --- parser -------------------------------------------------------------------


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """``orders`` and ``cases`` under the ``gateway`` parser; ``command`` adds one with the common options."""

    def client(name: str, help_text: str, func: Any, parent: Any) -> argparse.ArgumentParser:
        p = command(name, help_text, func, parent)
        p.add_argument("--url", default=os.environ.get("GATEWAY_URL", DEFAULT_URL), help=f"the gateway (default: $GATEWAY_URL or {DEFAULT_URL})")
        p.add_argument("--token", help="bearer token (default: $GATEWAY_TOKEN, which keeps it out of `ps`)")
        p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the gateway (default: 60)")
        return p

    orders = sub.add_parser("orders", help="legal orders, through a running gateway").add_subparsers(
        dest="orders_command", required=True, metavar="ACTION"
    )
    p = client("submit", "submit a signed order (intake); print the decision; exit 2 unless every item is disclosed", cmd_orders_submit, orders)
    p.add_argument("order", type=Path, help="file with the compact JWS, or - for stdin")
    p = client("show", "the decision document as it stands now (intake, legal)", cmd_orders_show, orders)
    p.add_argument("id", help="order id")
    p.add_argument("--authority", help="the issuing authority, when two used the same order id")
    p = client("package", "download the disclosure package (intake), verified; written to FILE only when whole and verified", cmd_orders_package, orders)
    p.add_argument("id", help="order id")
    p.add_argument("-o", "--output", type=Path, required=True, help="where to write the package (tar)")
    p.add_argument("--authority", help="the issuing authority, when two used the same order id")
    p.add_argument("--key", type=Path, help="the provider's public key (default: from the config's identity.provider_key)")

    cases = sub.add_parser("cases", help="legal review cases, through a running gateway").add_subparsers(
        dest="cases_command", required=True, metavar="ACTION"
    )
    p = client("list", "the review queue: active cases first, soonest deadline first (legal)", cmd_cases_list, cases)
    for name in ("state", "jurisdiction", "region", "instrument"):
        p.add_argument(f"--{name}", help=f"only cases of this {name}")
    p.add_argument("--limit", type=_positive, help="at most this many cases (default: every page)")
    p.add_argument("--page-size", type=_page_size, default=100, help="cases asked for per request, 1..1000 (default: 100)")
    p = client("show", "one case: order, decision, deadline, approvals, history (legal)", cmd_cases_show, cases)
    p.add_argument("id", help="case id (case-...)")
    p = client("approve", "approve a case with a written justification (legal; two different lawyers release data)", cmd_cases_approve, cases)
    p.add_argument("id", help="case id (case-...)")
    p.add_argument("--justification", required=True, help="why, in writing (kept in the case and the ledger)")
    p.add_argument("--categories", help="approve only these categories, comma-separated (default: all the case's)")
    p = client("deny", "deny a case with a written justification (legal; refuses its items)", cmd_cases_deny, cases)
    p.add_argument("id", help="case id (case-...)")
    p.add_argument("--justification", required=True, help="why, in writing (kept in the case and the ledger)")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number of at least 1")
    return int(text)


def _page_size(text: str) -> int:
    value = _positive(text)
    if value > 1000:
        raise argparse.ArgumentTypeError(f"`{text}` is more than 1000")
    return value
