"""What both clients share: configuration, request building, the retry policy, decoding the
answer and mapping error answers to exceptions. The sync and async clients only send.

Retries (at most `max_retries` after the first attempt), with exponential backoff and
jitter (`INITIAL_RETRY_DELAY_SECONDS * 2**attempt`, capped at `MAX_RETRY_DELAY_SECONDS`,
times a random factor in [0.75, 1]) unless the answer's `Retry-After` names the wait:

- always, whatever the call: a 429 answer, and a connection that could not be opened (the
  request was never sent);
- only for a call that is safe to repeat (`Call.retryable`: reads, `PUT`/`DELETE`, a call
  that carries an idempotency key, a call idempotent by nature such as capturing a hold):
  5xx answers and connections lost after the request was sent.

A call's idempotency key is chosen once, before the first attempt, and every retry sends the
same body, so the server applies the call at most once.
"""

from __future__ import annotations

import copy
import email.utils
import os
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Protocol, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from tollhouse.sdk.errors import APIConnectionError, APIStatusError, APITimeoutError

T = TypeVar("T")

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8080"
"""Where `tollhouse serve` listens by default."""
DEFAULT_TIMEOUT_SECONDS: Final = 60.0
"""Per attempt: connect, each read, each write."""
DEFAULT_MAX_RETRIES: Final = 2
INITIAL_RETRY_DELAY_SECONDS: Final = 0.5
MAX_RETRY_DELAY_SECONDS: Final = 8.0
MAX_RETRY_AFTER_SECONDS: Final = 60.0
"""A `Retry-After` longer than this is not waited for: the error is raised instead."""
URL_ENV: Final = "TOLLHOUSE_URL"
API_KEY_ENV: Final = "TOLLHOUSE_API_KEY"

NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport errors raised before any byte of the request left: always safe to retry."""

_adapters: dict[Any, TypeAdapter[Any]] = {}


def new_idempotency_key() -> str:
    """A fresh idempotency key for one money-moving call (`sdk_<32 hex digits>`)."""
    return f"sdk_{uuid.uuid4().hex}"


def path(template: str, **values: str) -> str:
    """`template` with each `{name}` replaced by its value, percent-encoded as one segment."""
    return template.format(**{name: quote(value, safe="") for name, value in values.items()})


def members(given: Mapping[str, Any], /, **optional: Any) -> dict[str, Any]:
    """A body's (or query's) members: `given` as they are (None included: a required member
    may be null), then each of `optional` that is not None (left out, the server's default
    applies)."""
    return {**given, **{name: value for name, value in optional.items() if value is not None}}


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API operation, ready to send (and re-send on retry) as is.

    `result` is what a 2xx answer decodes to: a model class or a `list[...]` of one
    (validated by pydantic), `bytes` (the raw body), `str` (its text) or None (no body)."""

    method: str
    path: str
    result: Any
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None
    retryable: bool = False
    """Safe to send again after a 5xx answer or a lost connection (see the module's rules)."""


class Requester(Protocol):
    """What a sync resource sends its calls through (`Client`)."""

    def _request(self, call: Call[T]) -> T: ...


class AsyncRequester(Protocol):
    """What an async resource sends its calls through (`AsyncClient`)."""

    async def _request(self, call: Call[T]) -> T: ...


class BaseClient:
    """Configuration and policy shared by `Client` and `AsyncClient`.

    Args:
        api_key: a tollhouse API key (`th_live_...`); default `TOLLHOUSE_API_KEY`.
        base_url: the server's root (`http://127.0.0.1:8080`); default `TOLLHOUSE_URL`,
            else `DEFAULT_BASE_URL`.
        timeout: seconds per attempt (or an `httpx.Timeout`).
        max_retries: retries after the first attempt (0 = none).
        headers: extra header fields sent with every request.

    Raises:
        ValueError: no API key given nor in `TOLLHOUSE_API_KEY`; `max_retries` < 0.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_SECONDS,
        max_retries: int = DEFAULT_MAX_RETRIES,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        api_key = api_key or os.environ.get(API_KEY_ENV)
        if not api_key:
            raise ValueError(f"no API key: pass api_key= or set {API_KEY_ENV}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {max_retries}")
        self.api_key = api_key
        self.base_url = (base_url or os.environ.get(URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            **(headers or {}),
        }

    def with_api_key(self, api_key: str) -> Self:
        """This client acting with another key (an application's end customer's, as
        `tollhouse.integrations.RemoteToll` uses it): the same connection pool, base URL,
        timeout and retries. Close the original client, not the copies."""
        other = copy.copy(self)
        other.api_key = api_key
        other.headers = {**self.headers, "Authorization": f"Bearer {api_key}"}
        other._attach_resources(other)  # type: ignore[attr-defined]
        return other

    def _request_options(self, call: Call[Any]) -> dict[str, Any]:
        """The keyword arguments of `httpx.Client.request` for `call`."""
        return {
            "method": call.method,
            "url": call.path,
            "headers": {"Authorization": self.headers["Authorization"]},
            "params": {
                name: _query_value(value)
                for name, value in call.params.items()
                if value is not None
            },
            "json": None if call.json is None else to_jsonable_python(call.json),
        }

    def _retry_delay(
        self, call: Call[Any], attempt: int, answer: httpx.Response | Exception
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None: raise instead."""
        if attempt >= self.max_retries:
            return None
        if isinstance(answer, Exception):
            retry = isinstance(answer, NOT_SENT) or call.retryable
            return _backoff(attempt) if retry else None
        if answer.status_code == 429 or (answer.status_code >= 500 and call.retryable):
            waited = _retry_after_seconds(answer.headers)
            if waited is None:
                return _backoff(attempt)
            return waited if waited <= MAX_RETRY_AFTER_SECONDS else None
        return None

    @staticmethod
    def _decode(call: Call[T], response: httpx.Response) -> T:
        """The 2xx answer as `call.result` says; an error answer raised as its exception.

        Raises:
            APIStatusError: the answer's status is not 2xx (a subclass by status).
        """
        if not response.is_success:
            raise APIStatusError.from_response(response)
        result: Any
        if call.result is None:
            result = None
        elif call.result is bytes:
            result = response.content
        elif call.result is str:
            result = response.text
        else:
            adapter = _adapters.get(call.result)
            if adapter is None:
                adapter = _adapters[call.result] = TypeAdapter(call.result)
            result = adapter.validate_json(response.content)
        return result  # type: ignore[no-any-return]

    @staticmethod
    def _connection_error(error: httpx.TransportError) -> APIConnectionError:
        if isinstance(error, httpx.TimeoutException):
            return APITimeoutError(f"no answer in time: {error!r}")
        return APIConnectionError(f"no answer: {error!r}")


def _query_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_query_value(item) for item in value]
    jsonable = to_jsonable_python(value)
    return str(jsonable).lower() if isinstance(jsonable, bool) else jsonable


def _backoff(attempt: int) -> float:
    delay = min(MAX_RETRY_DELAY_SECONDS, INITIAL_RETRY_DELAY_SECONDS * 2.0**attempt)
    return delay * random.uniform(0.75, 1.0)


def _retry_after_seconds(headers: httpx.Headers) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
