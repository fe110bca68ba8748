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
    scopes: list[str]
    allowed_models: list[str] | None
    rate_limit_rpm: int | None
    max_in_flight: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    successor_id: str | None
    key: str


class Key(Model):
    """Answered by `GET /v1/customers/{customer_id}/keys`."""

    id: str
    customer_id: str | None
    name: str
    prefix: str
    scopes: list[str]
    allowed_models: list[str] | None
    rate_limit_rpm: int | None
    max_in_flight: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    successor_id: str | None


class RotatedKey(Model):
    """Answered by `POST /v1/keys/{key_id}/rotate`."""

    id: str
    customer_id: str | None
    name: str
    prefix: str
    scopes: list[str]
    allowed_models: list[str] | None
    rate_limit_rpm: int | None
    max_in_flight: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    successor_id: str | None
    key: str
    previous_key_id: str
    previous_key_expires_at: datetime


class KeyUsage(Model):
    """Answered by `GET /v1/keys/{key_id}/usage`."""

    key_id: str
    start: datetime
    end: datetime
    usage: dict[str, int]
