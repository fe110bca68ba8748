"""The Python SDK of tollhouse's control API: `Client` (sync) and `AsyncClient` (asyncio).

```python
from tollhouse import Client

client = Client(base_url="http://127.0.0.1:8080", api_key="th_live_...")  # an operator key
customer = client.customers.create(name="Ada")
client.credits.grant(customer.id, amount_micros=5_000_000)  # $5.00, once however retried
authorized = client.holds.authorize(
    model="flux.1-schnell", customer_id=customer.id, usage={"images": 4}
)  # holds the estimate: 4 images
client.holds.capture(authorized.hold.id, amount_micros=3 * 2_700)  # 3 made; the rest released
for entry in client.credits.transactions(customer.id):  # every page
    print(entry.kind, entry.amount_micros)
```

- Money is integer micros (1 USD = 1,000,000); durations are seconds; times UTC-aware.
- One base (`_base.BaseClient`) holds configuration, request building, the retry policy and
  the mapping of error answers to exceptions (`errors`); the two clients only send.
- Models and resource classes are written from the server's OpenAPI document by `codegen`;
  `routes.OPERATIONS` maps each method to its route.
- Imports nothing from the server: only httpx and pydantic.
- The gateway routes (`/v1/chat/completions`, `/v1/messages`, ...) are not here: point the
  `openai` or `anthropic` SDK at tollhouse.
"""

from tollhouse.sdk.client import AsyncClient, Client
from tollhouse.sdk.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    TollhouseAPIError,
    UnprocessableEntityError,
)
from tollhouse.sdk.pagination import AsyncPage, SyncPage

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncPage",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "SyncPage",
    "TollhouseAPIError",
    "UnprocessableEntityError",
]
