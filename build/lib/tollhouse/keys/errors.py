"""API key errors. Messages never contain a key or its digest.

```
TollhouseError
└── KeysError                                          (family marker)
    ├── MalformedKey (401 malformed-key)                  also Unauthenticated: shape or checksum
    ├── InvalidKey (401 invalid-key)                      also Unauthenticated: unknown, revoked
    │                                                     or expired (one message for all)
    ├── InsufficientScope (403 insufficient-scope)        also Forbidden; extra: required_scope
    ├── KeyExceedsIssuer (403 key-exceeds-issuer)         also Forbidden: a key may mint only
    │                                                     what it has; extra: fields
    ├── KeyNotFound (404 key-not-found)                   also NotFound
    ├── KeyExists (409 key-exists)                        also Conflict: a given raw key is taken
    ├── KeyNotRotatable (409 key-not-rotatable)           also Conflict: rotated, revoked or
    │                                                     expired; extra: key_id, state
    └── InvalidScope (422 invalid-scope)                  also InvalidInput; extra: errors
```
"""

from __future__ import annotations

from tollhouse.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TollhouseError,
    Unauthenticated,
)


class KeysError(TollhouseError):
    """Base of the keys domain's errors."""


class MalformedKey(Unauthenticated, KeysError):
    """The string is not a tollhouse key: wrong shape or bad checksum (a typo). No lookup done."""

    status, code, title = 401, "malformed-key", "Malformed API key"


class InvalidKey(Unauthenticated, KeysError):
    """A well-formed key that does not authenticate: unknown, revoked or expired.

    The three cases share one message on purpose, so a caller learns nothing about which.
    """

    status, code, title = 401, "invalid-key", "Invalid API key"


class InsufficientScope(Forbidden, KeysError):
    """The key lacks the scope the operation needs (`required_scope` in the body)."""

    status, code, title = 403, "insufficient-scope", "Insufficient scope"


class KeyExceedsIssuer(Forbidden, KeysError):
    """The key asked for would have more than the key minting it (`create_key(issuer=...)`).

    `fields` (sorted) names what exceeds: `customer_id` (an operator key minted by a customer
    key), `scopes`, `allowed_models`, `rate_limit_rpm`, `expires_at`.
    """

    status, code, title = 403, "key-exceeds-issuer", "Key exceeds the issuing key"


class KeyNotFound(NotFound, KeysError):
    """No key with that id (for that customer)."""

    status, code, title = 404, "key-not-found", "API key not found"


class InvalidScope(InvalidInput, KeysError):
    """A scope outside `read`, `write`, `admin`, or no scope at all."""

    status, code, title = 422, "invalid-scope", "Invalid scope"


class KeyExists(Conflict, KeysError):
    """`create_key(raw_key=...)` was given a key that is already installed."""

    status, code, title = 409, "key-exists", "API key already exists"


class KeyNotRotatable(Conflict, KeysError):
    """The key was already rotated, or is revoked or expired: it has no successor to get.

    `state` is `rotated` (then `successor_id` names its successor), `revoked` or `expired`.
    """

    status, code, title = 409, "key-not-rotatable", "API key cannot be rotated"
