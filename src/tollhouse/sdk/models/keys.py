"""Models of `client.keys`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime

from tollhouse.sdk.models._model import Model


class IssuedKey(Model):
    """Answered by `POST /v1/customers/{customer_id}/keys`."""

    id: str
    customer_id: str | None
    name: str
    prefix: str
    """The visible start of the key, to recognise it in lists."""
    scopes: list[str]
    allowed_models: list[str] | None
    rate_limit_rpm: int | None
    max_in_flight: int | None
    """Gateway requests this key may have under way at once; null = only its plan's cap."""
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    successor_id: str | None
    """The key that replaced this one by rotation; null = never rotated."""
    key: str
    """The secret key. Shown only in this response: store it now."""


class Key(Model):
    """Answered by `GET /v1/customers/{customer_id}/keys`."""

    id: str
    customer_id: str | None
    name: str
    prefix: str
    """The visible start of the key, to recognise it in lists."""
    scopes: list[str]
    allowed_models: list[str] | None
    rate_limit_rpm: int | None
    max_in_flight: int | None
    """Gateway requests this key may have under way at once; null = only its plan's cap."""
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    successor_id: str | None
    """The key that replaced this one by rotation; null = never rotated."""


class RotatedKey(Model):
    """Answered by `POST /v1/keys/{key_id}/rotate`."""

    id: str
    customer_id: str | None
    name: str
    prefix: str
    """The visible start of the key, to recognise it in lists."""
    scopes: list[str]
    allowed_models: list[str] | None
    rate_limit_rpm: int | None
    max_in_flight: int | None
    """Gateway requests this key may have under way at once; null = only its plan's cap."""
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    successor_id: str | None
    """The key that replaced this one by rotation; null = never rotated."""
    key: str
    """The secret key. Shown only in this response: store it now."""
    previous_key_id: str
    """The rotated key."""
    previous_key_expires_at: datetime
    """When the rotated key stops working: the end of the grace period, or its own expiry if that
    comes first.
    """


class KeyUsage(Model):
    """Answered by `GET /v1/keys/{key_id}/usage`."""

    key_id: str
    start: datetime
    end: datetime
    usage: dict[str, int]
