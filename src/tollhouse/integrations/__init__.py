"""tollhouse inside an application: authorize a unit of work before it runs, settle it
after (capture and record on success, void on an error status or an exception).

- `toll`: `Requirement`, `Work`, the `Toll` protocol and `LocalToll` (in-process).
- `remote`: `RemoteToll`, the same against a tollhouse server through the SDK.
- `asgi`: `TollMiddleware` for any ASGI app (settles; authorizes by `rules`).
- `fastapi`: `install(app, toll)`, the `requires(toll, model=...)` dependency, and
  `authorize(request, toll, requirement)` for what depends on the request.

Imports: api (the sidecar's authorization and problem+json), gateway (quantities, retries),
server (the runtime), sdk (remote), metering, ledger, catalog.
"""

from tollhouse.integrations.asgi import TollMiddleware
from tollhouse.integrations.fastapi import authorize, install, requires
from tollhouse.integrations.remote import RemoteToll
from tollhouse.integrations.toll import LocalToll, Requirement, Toll, Work

__all__ = [
    "LocalToll",
    "RemoteToll",
    "Requirement",
    "Toll",
    "TollMiddleware",
    "Work",
    "authorize",
    "install",
    "requires",
]
