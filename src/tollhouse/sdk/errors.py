"""What the SDK raises: one exception per way a call can fail.

```
TollhouseAPIError                 every error the client raises
├── APIConnectionError            no answer: refused, reset, DNS, TLS
│   └── APITimeoutError           no answer within the timeout
└── APIStatusError                an error answer (problem+json: type, title, status, detail)
    ├── BadRequestError           400
    ├── AuthenticationError       401 a missing, unknown, expired or revoked key
    ├── PaymentRequiredError      402 insufficient credits, no active session
    ├── PermissionDeniedError     403 scope, model, feature or plan not allowed
    ├── NotFoundError             404
    ├── ConflictError             409 state conflicts (`hold-not-open`, `session-active`)
    ├── UnprocessableEntityError  422 invalid input (`errors` lists `{loc, msg}`), or
    │                             `idempotency-key-reused` (`fields` names what differs)
    ├── RateLimitError            429 rate limit or quota (`retry_after_seconds`)
    └── InternalServerError       5xx
```

An `APIStatusError` carries the RFC 9457 members of the answer: `type` (a stable URI,
`https://tollhouse.dev/problems/<code>`), `code` (its last segment, `insufficient-credit`),
`title`, `status`, `detail`, `instance`, and every other member in `extra`
(`errors`, `fields`, `retry_after_seconds`, ...).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx


class TollhouseAPIError(Exception):
    """Base of every error the SDK raises."""


class APIConnectionError(TollhouseAPIError):
    """The server gave no answer (connection refused or reset, DNS, TLS, protocol error)."""


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout (seconds)."""


class APIStatusError(TollhouseAPIError):
    """The server answered with an error status; the problem+json members as attributes.

    `type` is the problem's stable URI, `code` its last path segment; `extra` holds every
    member beyond `type`, `title`, `status`, `detail` and `instance`; `headers` the answer's
    header fields (`Retry-After`, `RateLimit-*`)."""

    status_code: ClassVar[int | None] = None
    """The status this class stands for (None: any not listed, see `for_status`)."""

    def __init__(
        self,
        *,
        status: int,
        type: str,
        title: str,
        detail: str,
        instance: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.instance = instance
        self.extra: dict[str, Any] = extra or {}
        self.headers = headers or httpx.Headers()
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")

    @property
    def code(self) -> str:
        """The problem's code: the last segment of `type` (`insufficient-credit`)."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]

    @classmethod
    def from_response(cls, response: httpx.Response) -> APIStatusError:
        """The exception for an error answer: its class by status, its members from the
        problem+json body (or, for another body, its text as `detail`)."""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            body = {"detail": response.text}
        members = dict(body)
        status = response.status_code
        error_class = for_status(status)
        return error_class(
            status=status,
            type=str(members.pop("type", "about:blank")),
            title=str(members.pop("title", response.reason_phrase)),
            detail=str(members.pop("detail", "")),
            instance=_optional_str(members.pop("instance", None)),
            extra={name: value for name, value in members.items() if name != "status"},
            headers=response.headers,
        )


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


class BadRequestError(APIStatusError):
    status_code = 400


class AuthenticationError(APIStatusError):
    status_code = 401


class PaymentRequiredError(APIStatusError):
    status_code = 402


class PermissionDeniedError(APIStatusError):
    status_code = 403


class NotFoundError(APIStatusError):
    status_code = 404


class ConflictError(APIStatusError):
    status_code = 409


class UnprocessableEntityError(APIStatusError):
    status_code = 422


class RateLimitError(APIStatusError):
    status_code = 429


class InternalServerError(APIStatusError):
    """Any 5xx answer."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    error.status_code: error
    for error in (
        BadRequestError,
        AuthenticationError,
        PaymentRequiredError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        UnprocessableEntityError,
        RateLimitError,
    )
    if error.status_code is not None
}


def for_status(status: int) -> type[APIStatusError]:
    """The class raised for an answer with `status`: the listed ones by status,
    `InternalServerError` for any 5xx, `APIStatusError` for the rest (405, 413, ...)."""
    if status >= 500:
        return InternalServerError
    return _BY_STATUS.get(status, APIStatusError)
