"""`client.keys`: KeysResource and AsyncKeysResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Literal

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, path
from tollhouse.sdk.models.keys import IssuedKey, Key, KeyUsage, RotatedKey


class KeysResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def create(
        self,
        customer_id: str,
        *,
        name: str | None = None,
        scopes: builtins.list[Literal["read", "write", "admin"]] | None = None,
        expires_at: datetime | None = None,
        allowed_models: builtins.list[str] | None = None,
        rate_limit_rpm: int | None = None,
        max_in_flight: int | None = None,
    ) -> IssuedKey:
        """Issue a key for a customer (operator, or the customer's own `admin` key), within the
        calling key's scopes, allowed models, per-key rpm and expiry.

        `POST /v1/customers/{customer_id}/keys`

        `expires_at`: Expiry; the key stops working at this instant. Null: the calling key's.

        `allowed_models`: Model ids this key may call; null = the calling key's (every model the
        plan allows for an unrestricted calling key).

        `rate_limit_rpm`: This key's own requests-per-minute cap, on top of the plan's limits;
        null = the calling key's.

        `max_in_flight`: This key's own cap on gateway requests under way at once, beside its
        plan's `max_in_flight`; null = the calling key's.
        """
        return self._requester._request(
            Call[IssuedKey](
                "POST",
                path("/v1/customers/{customer_id}/keys", customer_id=customer_id),
                IssuedKey,
                json=members(
                    {},
                    name=name,
                    scopes=scopes,
                    expires_at=expires_at,
                    allowed_models=allowed_models,
                    rate_limit_rpm=rate_limit_rpm,
                    max_in_flight=max_in_flight,
                ),
            )
        )

    def list(self, customer_id: str) -> builtins.list[Key]:
        """The customer's keys, revoked ones included (secrets are never shown again).

        `GET /v1/customers/{customer_id}/keys`
        """
        return self._requester._request(
            Call[builtins.list[Key]](
                "GET",
                path("/v1/customers/{customer_id}/keys", customer_id=customer_id),
                builtins.list[Key],
                retryable=True,
            )
        )

    def retrieve(self, key_id: str) -> Key:
        """Get Key

        `GET /v1/keys/{key_id}`
        """
        return self._requester._request(
            Call[Key]("GET", path("/v1/keys/{key_id}", key_id=key_id), Key, retryable=True)
        )

    def revoke(self, key_id: str) -> Key:
        """Revoke a key: refused at once here, and in every other process within 2 s (through Redis
        at once when it is configured). Caches are dropped after the commit, so no process can
        reload the key as it was.

        `DELETE /v1/keys/{key_id}`
        """
        return self._requester._request(
            Call[Key]("DELETE", path("/v1/keys/{key_id}", key_id=key_id), Key, retryable=True)
        )

    def rotate(self, key_id: str, *, grace_seconds: int | None = None) -> RotatedKey:
        """Issue a successor with the key's settings (secret shown once) and keep the old key
        working for `grace_seconds` (default 24 h). A customer's key rotates only its own
        customer's keys. Caches drop the old key after the commit, so every process sees its new
        expiry.

        `POST /v1/keys/{key_id}/rotate`

        `grace_seconds`: Seconds the old key keeps working (never beyond its own expiry); 0 = it
        stops now.
        """
        return self._requester._request(
            Call[RotatedKey](
                "POST",
                path("/v1/keys/{key_id}/rotate", key_id=key_id),
                RotatedKey,
                json=members({}, grace_seconds=grace_seconds),
            )
        )

    def usage(
        self, key_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> KeyUsage:
        """Totals per meter of the calls made with this key in `[start, end)`.

        `GET /v1/keys/{key_id}/usage`

        `start`: default: 30 days ago

        `end`: default: now
        """
        return self._requester._request(
            Call[KeyUsage](
                "GET",
                path("/v1/keys/{key_id}/usage", key_id=key_id),
                KeyUsage,
                params=members({}, start=start, end=end),
                retryable=True,
            )
        )


class AsyncKeysResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def create(
        self,
        customer_id: str,
        *,
        name: str | None = None,
        scopes: builtins.list[Literal["read", "write", "admin"]] | None = None,
        expires_at: datetime | None = None,
        allowed_models: builtins.list[str] | None = None,
        rate_limit_rpm: int | None = None,
        max_in_flight: int | None = None,
    ) -> IssuedKey:
        """Issue a key for a customer (operator, or the customer's own `admin` key), within the
        calling key's scopes, allowed models, per-key rpm and expiry.

        `POST /v1/customers/{customer_id}/keys`

        `expires_at`: Expiry; the key stops working at this instant. Null: the calling key's.

        `allowed_models`: Model ids this key may call; null = the calling key's (every model the
        plan allows for an unrestricted calling key).

        `rate_limit_rpm`: This key's own requests-per-minute cap, on top of the plan's limits;
        null = the calling key's.

        `max_in_flight`: This key's own cap on gateway requests under way at once, beside its
        plan's `max_in_flight`; null = the calling key's.
        """
        return await self._requester._request(
            Call[IssuedKey](
                "POST",
                path("/v1/customers/{customer_id}/keys", customer_id=customer_id),
                IssuedKey,
                json=members(
                    {},
                    name=name,
                    scopes=scopes,
                    expires_at=expires_at,
                    allowed_models=allowed_models,
                    rate_limit_rpm=rate_limit_rpm,
                    max_in_flight=max_in_flight,
                ),
            )
        )

    async def list(self, customer_id: str) -> builtins.list[Key]:
        """The customer's keys, revoked ones included (secrets are never shown again).

        `GET /v1/customers/{customer_id}/keys`
        """
        return await self._requester._request(
            Call[builtins.list[Key]](
                "GET",
                path("/v1/customers/{customer_id}/keys", customer_id=customer_id),
                builtins.list[Key],
                retryable=True,
            )
        )

    async def retrieve(self, key_id: str) -> Key:
        """Get Key

        `GET /v1/keys/{key_id}`
        """
        return await self._requester._request(
            Call[Key]("GET", path("/v1/keys/{key_id}", key_id=key_id), Key, retryable=True)
        )

    async def revoke(self, key_id: str) -> Key:
        """Revoke a key: refused at once here, and in every other process within 2 s (through Redis
        at once when it is configured). Caches are dropped after the commit, so no process can
        reload the key as it was.

        `DELETE /v1/keys/{key_id}`
        """
        return await self._requester._request(
            Call[Key]("DELETE", path("/v1/keys/{key_id}", key_id=key_id), Key, retryable=True)
        )

    async def rotate(self, key_id: str, *, grace_seconds: int | None = None) -> RotatedKey:
        """Issue a successor with the key's settings (secret shown once) and keep the old key
        working for `grace_seconds` (default 24 h). A customer's key rotates only its own
        customer's keys. Caches drop the old key after the commit, so every process sees its new
        expiry.

        `POST /v1/keys/{key_id}/rotate`

        `grace_seconds`: Seconds the old key keeps working (never beyond its own expiry); 0 = it
        stops now.
        """
        return await self._requester._request(
            Call[RotatedKey](
                "POST",
                path("/v1/keys/{key_id}/rotate", key_id=key_id),
                RotatedKey,
                json=members({}, grace_seconds=grace_seconds),
            )
        )

    async def usage(
        self, key_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> KeyUsage:
        """Totals per meter of the calls made with this key in `[start, end)`.

        `GET /v1/keys/{key_id}/usage`

        `start`: default: 30 days ago

        `end`: default: now
        """
        return await self._requester._request(
            Call[KeyUsage](
                "GET",
                path("/v1/keys/{key_id}/usage", key_id=key_id),
                KeyUsage,
                params=members({}, start=start, end=end),
                retryable=True,
            )
        )
