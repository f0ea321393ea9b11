from __future__ import annotations

from tests.web.conftest import client, env

__all__ = ["client", "env"]
