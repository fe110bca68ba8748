"""Webhooks: the events outbox delivered to the operator's endpoints, signed per Standard
Webhooks, retried for more than a day, logged attempt by attempt.

```python
from tollhouse.webhooks import service as webhooks

async with db.transaction() as session:
    created = await webhooks.create_endpoint(
        session, url="https://app.example.com/hooks", event_types=["session.*"], clock=clock
    )
print(created.secret)  # whsec_...: shown once; verify deliveries with it

# `serve` runs a WebhookWorker; tests drive one pass at a time:
await Dispatcher(db, clock=clock).dispatch()    # outbox events -> delivery rows
await deliver_due(db, http, clock=clock)        # due deliveries -> signed POSTs, logged
```

Invariants:
- One delivery per (endpoint, event), by a unique constraint: the dispatcher may read an
  event any number of times, in any number of processes (`webhooks.dispatch`).
- An endpoint gets the events created while it is enabled (from its `enabled_at`) whose type
  its filters take (`webhooks.filters`); never those from before.
- A delivery is sent by one process at a time (a lease), at least once on the wire: the same
  `webhook-id` (the event id) and body on every attempt, only the timestamp and signature
  change (`webhooks.signing`).
- Every attempt is logged and never changed; a delivery is `pending` until a 2xx
  (`succeeded`) or its last scheduled attempt fails (`failed`); the schedule and the rule
  that disables an endpoint are in `webhooks.schedule`.
- Service functions never commit; the dispatcher and the delivery steps run short
  transactions of their own and hold none while waiting on the network.

Imports: `events`, `storage`, `clock`, `ids`, `errors`; used by `server` (the worker), `api`
and `cli`.
"""

from tollhouse.webhooks.delivery import deliver_due
from tollhouse.webhooks.dispatch import Dispatcher
from tollhouse.webhooks.errors import (
    WebhookDeliveryNotFound,
    WebhookEndpointDisabled,
    WebhookEndpointNotFound,
    WebhooksError,
)
from tollhouse.webhooks.models import DeliveryStatus
from tollhouse.webhooks.schemas import (
    AttemptView,
    CreatedEndpoint,
    DeliveryPage,
    DeliveryView,
    EndpointView,
)
from tollhouse.webhooks.worker import WebhookWorker

__all__ = [
    "AttemptView",
    "CreatedEndpoint",
    "DeliveryPage",
    "DeliveryStatus",
    "DeliveryView",
    "Dispatcher",
    "EndpointView",
    "WebhookDeliveryNotFound",
    "WebhookEndpointDisabled",
    "WebhookEndpointNotFound",
    "WebhookWorker",
    "WebhooksError",
    "deliver_due",
]
