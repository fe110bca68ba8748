"""ASGI middleware: refuse request bodies larger than `max_body_bytes` with 413.

A declared `Content-Length` above the limit is refused before the body is read. A body sent
without one (chunked) is read here, up to the limit, before the app runs, and replayed to it:
refused with 413 as soon as it passes the limit, so no route ever sees an oversized body (and
no framework can turn the refusal into a body-parsing 400).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollhouse.api.problems import is_gateway_path, problem_response
from tollhouse.errors import PayloadTooLarge


class BodyLimit:
    """Wraps an ASGI app; `max_bytes` is the largest body accepted."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    await self._refuse(scope, receive, send)
                    return
                break
        else:
            buffered = await self._read_within_limit(receive)
            if buffered is None:
                await self._refuse(scope, receive, send)
                return
            receive = _replay(buffered, receive)
        await self.app(scope, receive, send)

    async def _read_within_limit(self, receive: Receive) -> list[Message] | None:
        """The request's messages up to its last body chunk; None once past the limit."""
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                return None
            if not message.get("more_body", False):
                return messages

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(f"request body is larger than {self.max_bytes} bytes")
        path = scope.get("path", "")
        response = problem_response(error, instance=path, openai_shape=is_gateway_path(path))
        await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives back `messages`, then defers to the real one (disconnects)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
