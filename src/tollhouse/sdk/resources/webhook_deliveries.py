"""`client.webhook_deliveries`: WebhookDeliveriesResource and AsyncWebhookDeliveriesResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, path
from tollhouse.sdk.models.webhook_deliveries import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookDeliveryList,
)
from tollhouse.sdk.pagination import AsyncPage, Cursor, SyncPage


class WebhookDeliveriesResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def list(
        self,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> SyncPage[WebhookDelivery]:
        """The delivery log, newest first, each delivery with every attempt (time, status or error,
        latency). Page on with `before=next_cursor` while `has_more`.

        `GET /v1/webhook-deliveries`

        `before`: the last delivery id seen: only older deliveries
        """
        return SyncPage(
            self._requester,
            Call[WebhookDeliveryList](
                "GET",
                "/v1/webhook-deliveries",
                WebhookDeliveryList,
                params=members(
                    {"limit": limit},
                    endpoint_id=endpoint_id,
                    event_id=event_id,
                    status=status,
                    before=before,
                ),
                retryable=True,
            ),
            Cursor(param="before", envelope=True),
        )

    def retrieve(self, delivery_id: str) -> WebhookDelivery:
        """Get Delivery

        `GET /v1/webhook-deliveries/{delivery_id}`
        """
        return self._requester._request(
            Call[WebhookDelivery](
                "GET",
                path("/v1/webhook-deliveries/{delivery_id}", delivery_id=delivery_id),
                WebhookDelivery,
                retryable=True,
            )
        )

    def retry(self, delivery_id: str) -> WebhookDelivery:
        """Send a delivery again now, whatever its status (`failed` ones too): due at once, sent
        within a second by a serving process. 409 `webhook-endpoint-disabled` while its endpoint
        is disabled.

        `POST /v1/webhook-deliveries/{delivery_id}/retry`
        """
        return self._requester._request(
            Call[WebhookDelivery](
                "POST",
                path("/v1/webhook-deliveries/{delivery_id}/retry", delivery_id=delivery_id),
                WebhookDelivery,
            )
        )


class AsyncWebhookDeliveriesResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    def list(
        self,
        *,
        endpoint_id: str | None = None,
        event_id: str | None = None,
        status: DeliveryStatus | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> AsyncPage[WebhookDelivery]:
        """The delivery log, newest first, each delivery with every attempt (time, status or error,
        latency). Page on with `before=next_cursor` while `has_more`.

        `GET /v1/webhook-deliveries`

        `before`: the last delivery id seen: only older deliveries
        """
        return AsyncPage(
            self._requester,
            Call[WebhookDeliveryList](
                "GET",
                "/v1/webhook-deliveries",
                WebhookDeliveryList,
                params=members(
                    {"limit": limit},
                    endpoint_id=endpoint_id,
                    event_id=event_id,
                    status=status,
                    before=before,
                ),
                retryable=True,
            ),
            Cursor(param="before", envelope=True),
        )

    async def retrieve(self, delivery_id: str) -> WebhookDelivery:
        """Get Delivery

        `GET /v1/webhook-deliveries/{delivery_id}`
        """
        return await self._requester._request(
            Call[WebhookDelivery](
                "GET",
                path("/v1/webhook-deliveries/{delivery_id}", delivery_id=delivery_id),
                WebhookDelivery,
                retryable=True,
            )
        )

    async def retry(self, delivery_id: str) -> WebhookDelivery:
        """Send a delivery again now, whatever its status (`failed` ones too): due at once, sent
        within a second by a serving process. 409 `webhook-endpoint-disabled` while its endpoint
        is disabled.

        `POST /v1/webhook-deliveries/{delivery_id}/retry`
        """
        return await self._requester._request(
            Call[WebhookDelivery](
                "POST",
                path("/v1/webhook-deliveries/{delivery_id}/retry", delivery_id=delivery_id),
                WebhookDelivery,
            )
        )
