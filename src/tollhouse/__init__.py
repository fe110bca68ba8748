"""tollhouse: API keys, rate limits, credits, usage and an OpenAI-compatible gateway for AI APIs.

The library API: the same services the server runs, for use in-process.

```python
from tollhouse import Runtime, Settings, create_app

app = create_app(Runtime(Settings(database_url="sqlite+aiosqlite:///./app.db")))
```

And the client of a running server's control API (`tollhouse.sdk`): `Client`, `AsyncClient`
and the exceptions they raise (`TollhouseAPIError` and its subclasses).

```python
from tollhouse import Client

client = Client(base_url="http://127.0.0.1:8080", api_key="th_live_...")
```

Names are imported on first use (PEP 562), so `import tollhouse` (and importing any one
domain, such as `tollhouse.ratelimit`) does not load the web stack, the database drivers or
every other domain.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from tollhouse.api.app import create_app
    from tollhouse.catalog import Catalog, Usage, load_catalog
    from tollhouse.clock import FrozenClock, SystemClock
    from tollhouse.config import Settings
    from tollhouse.errors import TollhouseError
    from tollhouse.keys import KeyAuthenticator
    from tollhouse.ledger import Ledger
    from tollhouse.metering import UsageRecorder
    from tollhouse.ratelimit import Limit, RateLimiter, storage_from_url
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
    from tollhouse.server.runtime import Runtime
    from tollhouse.storage import Database

_ORIGINS = {
    "APIConnectionError": "tollhouse.sdk.errors",
    "APIStatusError": "tollhouse.sdk.errors",
    "APITimeoutError": "tollhouse.sdk.errors",
    "AsyncClient": "tollhouse.sdk.client",
    "AuthenticationError": "tollhouse.sdk.errors",
    "BadRequestError": "tollhouse.sdk.errors",
    "Catalog": "tollhouse.catalog",
    "Client": "tollhouse.sdk.client",
    "ConflictError": "tollhouse.sdk.errors",
    "Database": "tollhouse.storage",
    "FrozenClock": "tollhouse.clock",
    "InternalServerError": "tollhouse.sdk.errors",
    "KeyAuthenticator": "tollhouse.keys",
    "Ledger": "tollhouse.ledger",
    "Limit": "tollhouse.ratelimit",
    "NotFoundError": "tollhouse.sdk.errors",
    "PaymentRequiredError": "tollhouse.sdk.errors",
    "PermissionDeniedError": "tollhouse.sdk.errors",
    "RateLimitError": "tollhouse.sdk.errors",
    "RateLimiter": "tollhouse.ratelimit",
    "Runtime": "tollhouse.server.runtime",
    "Settings": "tollhouse.config",
    "SystemClock": "tollhouse.clock",
    "TollhouseAPIError": "tollhouse.sdk.errors",
    "TollhouseError": "tollhouse.errors",
    "UnprocessableEntityError": "tollhouse.sdk.errors",
    "Usage": "tollhouse.catalog",
    "UsageRecorder": "tollhouse.metering",
    "create_app": "tollhouse.api.app",
    "load_catalog": "tollhouse.catalog",
    "storage_from_url": "tollhouse.ratelimit",
}
"""Where each public name lives."""

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Catalog",
    "Client",
    "ConflictError",
    "Database",
    "FrozenClock",
    "InternalServerError",
    "KeyAuthenticator",
    "Ledger",
    "Limit",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimiter",
    "Runtime",
    "Settings",
    "SystemClock",
    "TollhouseAPIError",
    "TollhouseError",
    "UnprocessableEntityError",
    "Usage",
    "UsageRecorder",
    "create_app",
    "load_catalog",
    "storage_from_url",
]


def __getattr__(name: str) -> _typing.Any:
    """Import a public name from its module on first use, then keep it here."""
    origin = _ORIGINS.get(name)
    if origin is None:
        raise AttributeError(f"module 'tollhouse' has no attribute {name!r}")
    value = getattr(_importlib.import_module(origin), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
