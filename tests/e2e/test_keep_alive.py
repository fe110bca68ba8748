"""After any error answer, the client's keep-alive connection serves its next request.

Story: a client on one HTTP/1.1 connection makes a bad request (too large, not JSON, a wrong
type, a NUL, no such route, a method not allowed, a bad key), or one that meets a bug (a 500,
on a control route and on a gateway route); its next request on the same connection is
answered. Until now a 500 closed the connection: the server re-raised the error after
answering it, and uvicorn closes a connection whose application raised.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.e2e.conftest import Stack
from tests.support.raw_http import Connection

LIMIT_BYTES = 64 * 1024
"""`running_stack`'s `max_body_bytes`."""
TOO_LARGE = b'{"name": "' + b"x" * LIMIT_BYTES + b'"}'
CHAT = b'{"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}'


def boom(*args: object, **kwargs: object) -> Any:
    raise RuntimeError("a bug")


# (method, target, body, chunked, key: "operator" | "customer" | "none", status)
ERRORS: dict[str, tuple[str, str, bytes, bool, str, int]] = {
    "413 declared length": ("POST", "/v1/customers", TOO_LARGE, False, "operator", 413),
    "413 chunked": ("POST", "/v1/customers", TOO_LARGE, True, "operator", 413),
    "413 gateway": ("POST", "/v1/chat/completions", TOO_LARGE, False, "customer", 413),
    "413 gateway chunked": ("POST", "/v1/chat/completions", TOO_LARGE, True, "customer", 413),
    "400 not JSON": ("POST", "/v1/customers", b'{"name": ', False, "operator", 400),
    "400 gateway not JSON": ("POST", "/v1/chat/completions", b"{", False, "customer", 400),
    "401": ("GET", "/v1/customers", b"", False, "none", 401),
    "404": ("GET", "/v1/nothing", b"", False, "operator", 404),
    "405": ("PATCH", "/v1/customers", b"", False, "operator", 405),
    "422 wrong type": ("POST", "/v1/customers", b'{"name": 5}', False, "operator", 422),
    "422 NUL": ("POST", "/v1/customers", b'{"name": "\\u0000"}', False, "operator", 422),
    "422 gateway NUL": (
        "POST",
        "/v1/chat/completions",
        b'{"model": "\\u0000"}',
        False,
        "customer",
        422,
    ),
    "500": ("GET", "/v1/customers/me", b"", False, "customer", 500),
    "500 gateway": ("POST", "/v1/chat/completions", CHAT, False, "customer", 500),
}


@pytest.mark.parametrize("error", sorted(ERRORS))
async def test_next_request_on_the_connection_is_answered(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, error: str
) -> None:
    method, target, body, chunked, who, status = ERRORS[error]
    _, customer_key = await stack.customer()
    keys = {"operator": stack.operator_key, "customer": customer_key}
    headers = {"content-type": "application/json"}
    if who in keys:
        headers["authorization"] = f"Bearer {keys[who]}"
    monkeypatch.setattr("tollhouse.api.routes.customers.CustomerOut.of", boom)
    monkeypatch.setattr("tollhouse.api.routes.gateway.estimate", boom)
    async with Connection(stack.base_url) as connection:
        refused = await connection.request(
            method, target, headers=headers, body=body, chunked=chunked
        )
        assert refused.status == status, refused.body
        assert refused.headers.get("connection") != "close"
        for _ in range(2):
            health = await connection.request("GET", "/healthz")
            assert (health.status, health.json()) == (200, {"status": "ok"})
