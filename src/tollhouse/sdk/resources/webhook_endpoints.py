"""`client.webhook_endpoints`: WebhookEndpointsResource and AsyncWebhookEndpointsResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

import builtins

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, path
from tollhouse.sdk.models.webhook_endpoints import CreatedWebhookEndpoint, WebhookEndpoint


class WebhookEndpointsResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def list(self) -> builtins.list[WebhookEndpoint]:
        """Every endpoint, oldest first (secrets are never shown again).

        `GET /v1/webhook-endpoints`
        """
        return self._requester._request(
            Call[builtins.list[WebhookEndpoint]](
                "GET", "/v1/webhook-endpoints", builtins.list[WebhookEndpoint], retryable=True
            )
        )

    def create(
        self,
        *,
        url: str,
        event_types: builtins.list[str] | None = None,
        description: str | None = None,
    ) -> CreatedWebhookEndpoint:
        """Register an endpoint: 201 with its signing secret, shown this once. The events created
        from now on whose type it takes are POSTed to it, signed per Standard Webhooks
        (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

        `POST /v1/webhook-endpoints`

        `url`: Absolute `http://` or `https://` URL deliveries are POSTed to.

        `event_types`: What it takes: exact types (`session.ended`), prefixes (`session.*`) or
        `*` (every event, the default).
        """
        return self._requester._request(
            Call[CreatedWebhookEndpoint](
                "POST",
                "/v1/webhook-endpoints",
                CreatedWebhookEndpoint,
                json=members({"url": url}, event_types=event_types, description=description),
            )
        )

    def retrieve(self, endpoint_id: str) -> WebhookEndpoint:
        """Get Endpoint

        `GET /v1/webhook-endpoints/{endpoint_id}`
        """
        return self._requester._request(
            Call[WebhookEndpoint](
                "GET",
                path("/v1/webhook-endpoints/{endpoint_id}", endpoint_id=endpoint_id),
                WebhookEndpoint,
                retryable=True,
            )
        )

    def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: builtins.list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change an endpoint's URL, filters or description; disable it, or enable it again.

        `PATCH /v1/webhook-endpoints/{endpoint_id}`

        `enabled`: `false` holds its deliveries; `true` enables it again (also after tollhouse
        disabled it for failing), clearing the reason.
        """
        return self._requester._request(
            Call[WebhookEndpoint](
                "PATCH",
                path("/v1/webhook-endpoints/{endpoint_id}", endpoint_id=endpoint_id),
                WebhookEndpoint,
                json=members(
                    {}, url=url, event_types=event_types, description=description, enabled=enabled
                ),
                retryable=True,
            )
        )

    def delete(self, endpoint_id: str) -> WebhookEndpoint:
        """Remove an endpoint, its deliveries and their log; answers it as it was.

        `DELETE /v1/webhook-endpoints/{endpoint_id}`
        """
        return self._requester._request(
            Call[WebhookEndpoint](
                "DELETE",
                path("/v1/webhook-endpoints/{endpoint_id}", endpoint_id=endpoint_id),
                WebhookEndpoint,
                retryable=True,
            )
        )


class AsyncWebhookEndpointsResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def list(self) -> builtins.list[WebhookEndpoint]:
        """Every endpoint, oldest first (secrets are never shown again).

        `GET /v1/webhook-endpoints`
        """
        return await self._requester._request(
            Call[builtins.list[WebhookEndpoint]](
                "GET", "/v1/webhook-endpoints", builtins.list[WebhookEndpoint], retryable=True
            )
        )

    async def create(
        self,
        *,
        url: str,
        event_types: builtins.list[str] | None = None,
        description: str | None = None,
    ) -> CreatedWebhookEndpoint:
        """Register an endpoint: 201 with its signing secret, shown this once. The events created
        from now on whose type it takes are POSTed to it, signed per Standard Webhooks
        (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

        `POST /v1/webhook-endpoints`

        `url`: Absolute `http://` or `https://` URL deliveries are POSTed to.

        `event_types`: What it takes: exact types (`session.ended`), prefixes (`session.*`) or
        `*` (every event, the default).
        """
        return await self._requester._request(
            Call[CreatedWebhookEndpoint](
                "POST",
                "/v1/webhook-endpoints",
                CreatedWebhookEndpoint,
                json=members({"url": url}, event_types=event_types, description=description),
            )
        )

    async def retrieve(self, endpoint_id: str) -> WebhookEndpoint:
        """Get Endpoint

        `GET /v1/webhook-endpoints/{endpoint_id}`
        """
        return await self._requester._request(
            Call[WebhookEndpoint](
                "GET",
                path("/v1/webhook-endpoints/{endpoint_id}", endpoint_id=endpoint_id),
                WebhookEndpoint,
                retryable=True,
            )
        )

    async def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: builtins.list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change an endpoint's URL, filters or description; disable it, or enable it again.

        `PATCH /v1/webhook-endpoints/{endpoint_id}`

        `enabled`: `false` holds its deliveries; `true` enables it again (also after tollhouse
        disabled it for failing), clearing the reason.
        """
        return await self._requester._request(
            Call[WebhookEndpoint](
                "PATCH",
                path("/v1/webhook-endpoints/{endpoint_id}", endpoint_id=endpoint_id),
                WebhookEndpoint,
                json=members(
                    {}, url=url, event_types=event_types, description=description, enabled=enabled
                ),
                retryable=True,
            )
        )

    async def delete(self, endpoint_id: str) -> WebhookEndpoint:
        """Remove an endpoint, its deliveries and their log; answers it as it was.

        `DELETE /v1/webhook-endpoints/{endpoint_id}`
        """
        return await self._requester._request(
            Call[WebhookEndpoint](
                "DELETE",
                path("/v1/webhook-endpoints/{endpoint_id}", endpoint_id=endpoint_id),
                WebhookEndpoint,
                retryable=True,
            )
        )
