"""The app's shared state and aiohttp's typed keys for it (app keys, request keys)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.metrics import GatewayMetrics
from gateway.model import Caller
from gateway.runtime import Runtime, Settings
from gateway.tokens import TokenVerifier


@dataclass
class AppState:
    """Filled in when the app starts (cleanup_ctx); app keys cannot change after that."""

    runtime: Runtime | None = None
    _tokens: TokenVerifier | None = None

    @property
    def rt(self) -> Runtime:
        assert self.runtime is not None, "the app has not started"
        return self.runtime

    @property
    def tokens(self) -> TokenVerifier:
        """The bearer-token verifier for the running runtime's key (it remembers verified tokens)."""
        rt = self.rt
        if self._tokens is None or self._tokens.key is not rt.token_key:
            self._tokens = TokenVerifier(rt.token_key, rt.config.identity, frozenset(rt.config.regions))
        return self._tokens


STATE_KEY = web.AppKey("state", AppState)
SETTINGS_KEY = web.AppKey("settings", Settings)
METRICS_KEY = web.AppKey("metrics", GatewayMetrics)
REQUEST_ID_KEY = web.RequestKey("request_id", str)
CALLER_KEY = web.RequestKey("caller", Caller)
PROBLEM_CODE_KEY = web.RequestKey("problem_code", str)  # the code of an error turned into a problem document, for the access log
