"""The outermost ASGI wrapper: every HTTP request gets a request id and is counted.

`Observed` opens the request's context (`observability.context`: the client's well-formed
`X-Request-Id`, else a new id), which every log line written while the request is handled
carries; adds `X-Request-Id` to the answer; and, once the request is over, counts it in
`tollhouse_http_requests_total` by route template, method, status and denial reason
(`observability.metrics.count_request`).

The route template is the matched route's path (`/v1/customers/{customer_id}`: a bounded set,
where raw paths are not), the exact path for the gateway's POSTs (which skip routing,
`api.app.TollhouseApp`), and `unmatched` when no route matched. The status is the answer's;
500 when the app raised before answering; `CLIENT_CLOSED` (499, as nginx logs it) when the
client left before any answer.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollhouse.observability import metrics
from tollhouse.observability.context import REQUEST_ID_HEADER, begin, end

UNMATCHED = "unmatched"
"""The route label of a request no route matched."""
CLIENT_CLOSED = 499
"""The status label of a request the client left before it was answered."""


class Observed:
    """Wraps the whole app; see the module docstring. `exact_paths` are the paths served
    without routing, counted under their own path."""

    def __init__(self, app: ASGIApp, *, exact_paths: Collection[str]) -> None:
        self.app = app
        self.exact_paths = frozenset(exact_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context, token = begin(scope["headers"])
        header = (REQUEST_ID_HEADER, context.request_id.encode())
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = status or 500
            raise
        finally:
            end(token)
            metrics.count_request(
                self.route(scope), scope["method"], status or CLIENT_CLOSED, context.problem
            )

    def route(self, scope: Scope) -> str:
        """The route template of a request that has been handled."""
        route = scope.get("route")
        if route is not None:
            return str(route.path)
        path: str = scope["path"]
        return path if path in self.exact_paths else UNMATCHED
