"""`client.health`: HealthResource and AsyncHealthResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from tollhouse.sdk._base import AsyncRequester, Call, Requester
from tollhouse.sdk.models.health import Health, Ready


class HealthResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def check(self) -> Health:
        """Liveness: 200 while the process runs; checks nothing else (restart it if this fails).

        `GET /health`
        """
        return self._requester._request(Call[Health]("GET", "/health", Health, retryable=True))

    def ready(self) -> Ready:
        """Readiness: 200 only when the database answers, its migrations are at this build's heads
        and Redis (when configured) answers; else 503 problem+json `not-ready` with every
        check's state in `checks` (see `tollhouse.server.health`).

        `GET /ready`
        """
        return self._requester._request(Call[Ready]("GET", "/ready", Ready, retryable=True))

    def live(self) -> dict[str, str]:
        """Healthz

        `GET /healthz`
        """
        return self._requester._request(
            Call[dict[str, str]]("GET", "/healthz", dict[str, str], retryable=True)
        )


class AsyncHealthResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def check(self) -> Health:
        """Liveness: 200 while the process runs; checks nothing else (restart it if this fails).

        `GET /health`
        """
        return await self._requester._request(
            Call[Health]("GET", "/health", Health, retryable=True)
        )

    async def ready(self) -> Ready:
        """Readiness: 200 only when the database answers, its migrations are at this build's heads
        and Redis (when configured) answers; else 503 problem+json `not-ready` with every
        check's state in `checks` (see `tollhouse.server.health`).

        `GET /ready`
        """
        return await self._requester._request(Call[Ready]("GET", "/ready", Ready, retryable=True))

    async def live(self) -> dict[str, str]:
        """Healthz

        `GET /healthz`
        """
        return await self._requester._request(
            Call[dict[str, str]]("GET", "/healthz", dict[str, str], retryable=True)
        )
