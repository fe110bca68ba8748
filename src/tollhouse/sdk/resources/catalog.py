"""`client.catalog`: CatalogResource and AsyncCatalogResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from tollhouse.sdk._base import AsyncRequester, Call, Requester
from tollhouse.sdk.models.catalog import Catalog, Plan


class CatalogResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def retrieve(self) -> Catalog:
        """The whole catalog this server runs with (prices as micros).

        `GET /v1/catalog`
        """
        return self._requester._request(
            Call[Catalog]("GET", "/v1/catalog", Catalog, retryable=True)
        )

    def plans(self) -> list[Plan]:
        """Every plan of the catalog, cheapest rank first.

        `GET /v1/plans`
        """
        return self._requester._request(
            Call[list[Plan]]("GET", "/v1/plans", list[Plan], retryable=True)
        )


class AsyncCatalogResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def retrieve(self) -> Catalog:
        """The whole catalog this server runs with (prices as micros).

        `GET /v1/catalog`
        """
        return await self._requester._request(
            Call[Catalog]("GET", "/v1/catalog", Catalog, retryable=True)
        )

    async def plans(self) -> list[Plan]:
        """Every plan of the catalog, cheapest rank first.

        `GET /v1/plans`
        """
        return await self._requester._request(
            Call[list[Plan]]("GET", "/v1/plans", list[Plan], retryable=True)
        )
