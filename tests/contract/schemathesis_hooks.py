"""Schemathesis hooks for the contract run (loaded through ``SCHEMATHESIS_HOOKS``): how to send an order body."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.serializer("application/jose")
def compact_jws(ctx: Any, value: Any) -> bytes:
    """An order is compact JWS text; whatever was generated for it goes as its text."""
    return value if isinstance(value, bytes) else str(value).encode()
