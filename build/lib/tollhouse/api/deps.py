"""FastAPI dependencies: the runtime, the calling principal, scope and tenancy checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from tollhouse.errors import Forbidden, NotFound, Unauthenticated
from tollhouse.keys import Principal
from tollhouse.server.runtime import Runtime

ME = "me"
"""Path alias for the caller's own customer id."""


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """A session in one transaction for the request: committed when the route returns."""
    async with runtime.db.transaction() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
"""The request's session. `scope="function"`: FastAPI ends the dependency (the COMMIT) when
the route function returns, before the response is sent, so a 2xx is never answered for a
write that is not committed (the default, "request", would commit after the answer)."""


def bearer_token(authorization: str | bytes | None) -> str:
    """The API key of an `Authorization: Bearer <key>` header value.

    Raises:
        Unauthenticated: no such header, or another scheme.
    """
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send your API key as 'Authorization: Bearer th_...'")
    return token.strip()


class BearerKey(HTTPBearer):
    """The API key, as FastAPI's HTTP bearer security: the OpenAPI document declares the
    scheme (so "Authorize" works in /docs) and every route depending on it. A missing or
    malformed header is `Unauthenticated` (401 problem+json, as `bearer_token` says), never
    FastAPI's own 401/403 answer."""

    async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials:
        token = bearer_token(request.headers.get("authorization"))
        return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)


api_key = BearerKey(
    scheme_name="bearer",
    bearerFormat="th_<env>_<random>",
    description="A tollhouse API key: `Authorization: Bearer th_...`.",
)


async def get_principal(
    credentials: Annotated[HTTPAuthorizationCredentials, Depends(api_key)], runtime: RuntimeDep
) -> Principal:
    return await runtime.authenticator.authenticate(credentials.credentials)


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency giving the principal after checking it has `scope`."""

    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        principal.require(scope)
        return principal

    return dependency


Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def require_operator(principal: Principal) -> None:
    """Raises Forbidden unless the key is an operator key."""
    if not principal.is_operator:
        raise Forbidden("this needs an operator key", required="operator")


def customer_of(principal: Principal, customer_id: str) -> str:
    """Resolve `customer_id` (or `me`) to the customer the caller may act on.

    Operators may act on any customer; a customer's key only on its own customer, and
    another customer's id answers 404, exactly as if it did not exist (no existence oracle).

    Raises:
        NotFound: the id is another customer's.
        Forbidden: an operator key asked for `me`.
    """
    if principal.is_operator:
        if customer_id == ME:
            raise Forbidden("operator keys have no customer: name the customer id")
        return customer_id
    assert principal.customer_id is not None
    if customer_id in (ME, principal.customer_id):
        return principal.customer_id
    raise NotFound(f"customer '{customer_id}' not found")
