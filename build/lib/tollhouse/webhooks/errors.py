"""Webhook errors.

```
TollhouseError
└── WebhooksError (500 webhooks-error)
    ├── WebhookEndpointNotFound (404 webhook-endpoint-not-found)  also a NotFound; endpoint_id
    ├── WebhookDeliveryNotFound (404 webhook-delivery-not-found)  also a NotFound; delivery_id
    └── WebhookEndpointDisabled (409 webhook-endpoint-disabled)   also a Conflict; endpoint_id,
                                                                  disabled_reason
```
A malformed URL or event type is the generic `InvalidInput` (422) naming the field.
"""

from __future__ import annotations

from tollhouse.errors import Conflict, NotFound, TollhouseError


class WebhooksError(TollhouseError):
    """Base of the webhooks domain's errors."""

    status, code, title = 500, "webhooks-error", "Webhooks error"


class WebhookEndpointNotFound(NotFound, WebhooksError):
    """No such webhook endpoint. Extra: `endpoint_id`."""

    status, code, title = 404, "webhook-endpoint-not-found", "Webhook endpoint not found"


class WebhookDeliveryNotFound(NotFound, WebhooksError):
    """No such webhook delivery. Extra: `delivery_id`."""

    status, code, title = 404, "webhook-delivery-not-found", "Webhook delivery not found"


class WebhookEndpointDisabled(Conflict, WebhooksError):
    """A retry of a delivery whose endpoint is disabled (enable it first). Extra:
    `endpoint_id`, `disabled_reason`."""

    status, code, title = 409, "webhook-endpoint-disabled", "Webhook endpoint disabled"
