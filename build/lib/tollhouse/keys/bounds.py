"""The mint rule: a key can mint only what it has.

A key created (or rotated) with another key, the issuer, gets at most what the issuer has,
field by field; `None` is the unbounded value of each field:

| field            | the new key must have                          | omitted (None) gives      |
| ---------------- | ---------------------------------------------- | ------------------------- |
| `customer_id`    | the issuer's customer; an operator key (no     | (always given)            |
|                  | customer) mints for any customer, and only an  |                           |
|                  | operator key mints operator keys               |                           |
| `scopes`         | effective scopes within the issuer's (`admin`  | `read`, `write`, narrowed |
|                  | implies `read` and `write`)                    | to the issuer's           |
| `allowed_models` | a subset of the issuer's (None = every model)  | the issuer's              |
| `rate_limit_rpm` | at most the issuer's (None = no per-key cap)   | the issuer's              |
| `max_in_flight`  | at most the issuer's (None = no per-key cap)   | the issuer's              |
| `expires_at`     | no later than the issuer's (None = never)      | the issuer's              |

So defaults never exceed: where the request omits a bounded field, the new key inherits the
issuer's bound. Operator keys follow the same rule (an expiring operator key mints keys that
expire with it). A trusted context with database access (the CLI, `bootstrap`, code that
embeds tollhouse) has no issuer key and is not bounded.

Pure functions: no database access, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from tollhouse.keys.errors import KeyExceedsIssuer
from tollhouse.keys.models import ApiKey
from tollhouse.keys.principal import IMPLIED_BY_ADMIN

DEFAULT_SCOPES = ("read", "write")
"""The scopes of a key created without any (narrowed to the issuer's)."""


def effective_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """`scopes` with what `admin` implies (`read`, `write`) added."""
    granted = frozenset(scopes)
    return granted | IMPLIED_BY_ADMIN if "admin" in granted else granted


def default_scopes(issuer: ApiKey | None) -> list[str]:
    """`read`, `write`; under an issuer, only those of the two the issuer has (effectively)."""
    if issuer is None:
        return list(DEFAULT_SCOPES)
    allowed = effective_scopes(issuer.scopes)
    return [scope for scope in DEFAULT_SCOPES if scope in allowed]


def exceeding(
    issuer: ApiKey,
    *,
    customer_id: str | None,
    scopes: Collection[str],
    allowed_models: Collection[str] | None,
    rate_limit_rpm: int | None,
    expires_at: datetime | None,
    max_in_flight: int | None = None,
) -> list[str]:
    """The names of the fields in which a key with these values has more than `issuer`, sorted
    (empty: the key is within the issuer's bounds)."""
    fields = []
    if issuer.customer_id is not None and customer_id != issuer.customer_id:
        fields.append("customer_id")
    if not effective_scopes(scopes) <= effective_scopes(issuer.scopes):
        fields.append("scopes")
    if issuer.allowed_models is not None and (
        allowed_models is None or not set(allowed_models) <= set(issuer.allowed_models)
    ):
        fields.append("allowed_models")
    if issuer.rate_limit_rpm is not None and (
        rate_limit_rpm is None or rate_limit_rpm > issuer.rate_limit_rpm
    ):
        fields.append("rate_limit_rpm")
    if issuer.max_in_flight is not None and (
        max_in_flight is None or max_in_flight > issuer.max_in_flight
    ):
        fields.append("max_in_flight")
    if issuer.expires_at is not None and (expires_at is None or expires_at > issuer.expires_at):
        fields.append("expires_at")
    return sorted(fields)


def require_within(
    issuer: ApiKey,
    *,
    customer_id: str | None,
    scopes: Collection[str],
    allowed_models: Collection[str] | None,
    rate_limit_rpm: int | None,
    expires_at: datetime | None,
    max_in_flight: int | None = None,
) -> None:
    """Raise unless a key with these values is within `issuer`'s bounds (see `exceeding`).

    Raises:
        KeyExceedsIssuer: 403; `fields` names each field that exceeds.
    """
    fields = exceeding(
        issuer,
        customer_id=customer_id,
        scopes=scopes,
        allowed_models=allowed_models,
        rate_limit_rpm=rate_limit_rpm,
        expires_at=expires_at,
        max_in_flight=max_in_flight,
    )
    if fields:
        raise KeyExceedsIssuer(
            f"a key can mint only what it has; this key would exceed it in: {', '.join(fields)}",
            fields=fields,
        )
