"""Fault tests run real processes (see ``harness``). Their size is bounded for CI; ``FAULT_SCALE`` makes them longer.

``FAULT_SCALE=20 .venv/bin/python -m pytest tests/faults`` runs twenty times the rounds CI runs.
"""

from __future__ import annotations

import os

import pytest

from tests.faults.harness import MOTO_SERVER


def scale() -> int:
    """How many times CI's rounds to run (``FAULT_SCALE``, at least 1)."""
    return max(1, int(os.environ.get("FAULT_SCALE", "1")))


@pytest.fixture
def needs_moto_server() -> None:
    if not MOTO_SERVER.exists():
        pytest.skip(f"no moto_server next to the interpreter ({MOTO_SERVER})")
