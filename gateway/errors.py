"""One error hierarchy with stable codes.

Every error the gateway raises on purpose is a ``GatewayError`` with a stable
kebab-case ``code`` and a message that says what to fix (lower case, no full
stop, user input in backticks). The web layer renders them as RFC 9457
problem documents through one table (``HTTP_STATUS``); the CLI catches the base
class once and picks its exit code. Nothing from a library leaks past the edge:
adapters translate their library's errors into these (``raise ... from exc``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class GatewayError(Exception):
    """Base class: a stable code, a message and optional structured details."""

    code = "internal-error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details

    def diagnostics(self) -> str:
        lines = [f"{self.code}: {self.message}"]
        for key, value in self.details.items():
            lines.append(f"  {key}: {value}")
        return "\n".join(lines)


class InvalidRequest(GatewayError):
    code = "invalid-request"


class PayloadTooLarge(GatewayError):
    code = "payload-too-large"


class NotFound(GatewayError):
    code = "not-found"


class Conflict(GatewayError):
    code = "conflict"


class PreconditionError(GatewayError):
    """A conditional request (``If-Match``, ``If-None-Match``) whose condition does not hold."""

    code = "precondition-failed"


class Unauthenticated(GatewayError):
    code = "unauthenticated"


class Forbidden(GatewayError):
    code = "forbidden"


class LegalRefusal(GatewayError):
    """A read refused for legal reasons (HTTP 451, RFC 7725)."""

    code = "residency-refused"


class StoreError(GatewayError):
    """A regional store failed; the operation did not happen."""

    code = "store-unavailable"


class LedgerError(GatewayError):
    """The audit ledger could not be written; whatever needed it is refused."""

    code = "ledger-unavailable"


class AnalysisUnavailable(GatewayError):
    """A policy analysis could not run now (busy) or did not finish (timed out, failed); nothing changed."""

    code = "analysis-failed"


class ConfigError(GatewayError):
    """The configuration is invalid; ``findings`` lists every problem."""

    code = "config-invalid"

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        summary = f"{len(findings)} problem{'s' if len(findings) != 1 else ''} in the configuration"
        super().__init__(summary)

    def diagnostics(self) -> str:
        return "\n".join(str(f) for f in self.findings)


class KeyFileError(GatewayError):
    """A key file is missing, unreadable or of the wrong kind."""

    code = "key-invalid"


class LedgerBroken(GatewayError):
    """Verification found the ledger altered, truncated or reordered."""

    code = "ledger-broken"


class Finding:
    """One configuration problem at a key path, e.g. ``regions.eu-west-1.jurisdiction``."""

    __slots__ = ("message", "path")

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def __repr__(self) -> str:
        return f"Finding({self.path!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Finding) and (self.path, self.message) == (other.path, other.message)

    def __hash__(self) -> int:
        return hash((self.path, self.message))


# The one table from error class to HTTP status. Subclasses inherit their
# parent's status; a code not listed here is a 500.
HTTP_STATUS: Mapping[type[GatewayError], int] = {
    InvalidRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PreconditionError: 412,
    PayloadTooLarge: 413,
    LegalRefusal: 451,
    StoreError: 503,
    LedgerError: 503,
    AnalysisUnavailable: 503,
    ConfigError: 500,
    KeyFileError: 500,
    LedgerBroken: 500,
}


def http_status(error: GatewayError) -> int:
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500
