"""API keys: issue, authenticate, scope-check, rotate and revoke the secrets customers call with.

Invariants:
- A raw key (`th_<env>_<22 base62 random><6 base62 crc32>`, ~131 random bits) exists only in
  the `IssuedKey` returned by `create_key`: the database holds its HMAC-SHA256 `digest`
  (unique) and a visible `prefix`; reprs, errors and logs never show either secret.
- `parse_key` rejects a wrong shape or checksum before any lookup (`MalformedKey`).
- A revoked key never authenticates again; an expired one from its `expires_at` on, even while
  cached. Unknown, revoked and expired keys fail with the same `InvalidKey` message.
- Scopes are a non-empty subset of `read`, `write`, `admin`; `admin` implies the others.
- A key mints only what it has: a key created or rotated with a key (the issuer) gets at
  most the issuer's customer, scopes, allowed models, per-key rpm and expiry
  (`keys/bounds.py`); only operator keys mint operator keys.
- A key is rotated at most once: `successor_id` names its successor, and it keeps working
  until its grace period ends.
- `customer_id` None means an operator key (`Principal.is_operator`, `plan` "").
- Service functions never commit; `KeyAuthenticator.flush_last_used` owns its transaction.
"""

from tollhouse.keys.auth import KeyAuthenticator
from tollhouse.keys.errors import (
    InsufficientScope,
    InvalidKey,
    InvalidScope,
    KeyExceedsIssuer,
    KeyExists,
    KeyNotFound,
    KeyNotRotatable,
    KeysError,
    MalformedKey,
)
from tollhouse.keys.format import ParsedKey, digest, generate_key, parse_key
from tollhouse.keys.models import ApiKey
from tollhouse.keys.principal import Principal
from tollhouse.keys.service import (
    SCOPES,
    IssuedKey,
    Rotation,
    create_key,
    get_key,
    has_operator_key,
    list_keys,
    revoke_key,
    rotate_key,
)

__all__ = [
    "SCOPES",
    "ApiKey",
    "InsufficientScope",
    "InvalidKey",
    "InvalidScope",
    "IssuedKey",
    "KeyAuthenticator",
    "KeyExceedsIssuer",
    "KeyExists",
    "KeyNotFound",
    "KeyNotRotatable",
    "KeysError",
    "MalformedKey",
    "ParsedKey",
    "Principal",
    "Rotation",
    "create_key",
    "digest",
    "generate_key",
    "get_key",
    "has_operator_key",
    "list_keys",
    "parse_key",
    "revoke_key",
    "rotate_key",
]
