"""`Client` and `AsyncClient`: the shared base's calls, sent over httpx, with retries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TypeVar

import httpx

from tollhouse.sdk._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_SECONDS,
    BaseClient,
    Call,
)
from tollhouse.sdk.resources import AsyncResources, Resources

T = TypeVar("T")
Self = TypeVar("Self", bound="Client")
AsyncSelf = TypeVar("AsyncSelf", bound="AsyncClient")


class Client(BaseClient, Resources):
    """The control API, synchronously: `client.<group>.<method>(...)`.

    ```python
    from tollhouse import Client

    with Client() as client:  # TOLLHOUSE_URL, TOLLHOUSE_API_KEY
        customer = client.customers.create(name="Ada")
        client.credits.grant(customer.id, amount_micros=5_000_000)
    ```

    Args: as `BaseClient` (`api_key`, `base_url`, `timeout` seconds, `max_retries`,
    `headers`), plus `transport`: an httpx transport to send through (tests, proxies).

    Raises (every method): `APIStatusError` subclasses for error answers,
    `APIConnectionError` (`APITimeoutError`) when no answer came, after the retries.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_SECONDS,
        max_retries: int = DEFAULT_MAX_RETRIES,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
        )
        self._http = httpx.Client(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout, transport=transport
        )
        self._attach_resources(self)

    def _request(self, call: Call[T]) -> T:
        """Send `call`, retrying as the base's policy says; its decoded answer."""
        options = self._request_options(call)
        attempt = 0
        while True:
            answer: httpx.Response | httpx.TransportError
            try:
                answer = self._http.request(**options)
            except httpx.TransportError as error:
                answer = error
            delay = self._retry_delay(call, attempt, answer)
            if delay is None:
                if isinstance(answer, httpx.TransportError):
                    raise self._connection_error(answer) from answer
                return self._decode(call, answer)
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self: Self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(BaseClient, AsyncResources):
    """The control API for asyncio: `await client.<group>.<method>(...)`; list methods
    return pages to iterate with `async for`.

    ```python
    from tollhouse import AsyncClient

    async with AsyncClient() as client:  # TOLLHOUSE_URL, TOLLHOUSE_API_KEY
        authorized = await client.holds.authorize(
            model="flux.1-schnell", customer_id="cus_...", usage={"images": 4}
        )
        await client.holds.capture(authorized.hold.id, amount_micros=3 * 2_700)
        async for entry in client.credits.transactions("cus_..."):
            print(entry.kind, entry.amount_micros)
    ```

    Args and errors as `Client`; `transport` is an `httpx.AsyncBaseTransport`.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_SECONDS,
        max_retries: int = DEFAULT_MAX_RETRIES,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout, transport=transport
        )
        self._attach_resources(self)

    async def _request(self, call: Call[T]) -> T:
        """Send `call`, retrying as the base's policy says; its decoded answer."""
        options = self._request_options(call)
        attempt = 0
        while True:
            answer: httpx.Response | httpx.TransportError
            try:
                answer = await self._http.request(**options)
            except httpx.TransportError as error:
                answer = error
            delay = self._retry_delay(call, attempt, answer)
            if delay is None:
                if isinstance(answer, httpx.TransportError):
                    raise self._connection_error(answer) from answer
                return self._decode(call, answer)
            await asyncio.sleep(delay)
            attempt += 1

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self: AsyncSelf) -> AsyncSelf:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
