"""What the gateway needs from the process around it (the server's `Runtime` provides it)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

import aiohttp

from tollhouse.alerts import CreditWatch
from tollhouse.catalog import Catalog
from tollhouse.clock import Clock
from tollhouse.config import Settings
from tollhouse.gateway.quotas import QuotaGuard
from tollhouse.gateway.session_guard import SessionGuard
from tollhouse.keys import KeyAuthenticator
from tollhouse.ledger import Ledger
from tollhouse.metering import UsageRecorder
from tollhouse.ratelimit import RateLimiter


class GatewayDeps(Protocol):
    settings: Settings
    clock: Clock
    catalog: Catalog
    authenticator: KeyAuthenticator
    limiter: RateLimiter
    ledger: Ledger
    recorder: UsageRecorder
    quotas: QuotaGuard
    sessions: SessionGuard
    credits: CreditWatch

    @property
    def http(self) -> aiohttp.ClientSession:
        """The pooled upstream client."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run `coro` in the background (its task); the server waits for it at shutdown."""
        ...

    async def run_here(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
        """Await `coro` in the calling task, waited for at shutdown like `spawn`ed work; a
        failure is logged, not raised."""
        ...
