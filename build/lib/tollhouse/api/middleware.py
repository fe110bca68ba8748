"""ASGI middleware at the edge: bodies too large (413), strings no store keeps (422), and
the connection kept after an answered error.

`BodyLimit` refuses request bodies larger than `max_body_bytes` with 413. A declared
`Content-Length` above the limit is refused before the body is read. A body sent without one
(chunked) is read here, up to the limit, before the app runs, and replayed to it: refused with
413 as soon as it passes the limit, so no route ever sees an oversized body (and no framework
can turn the refusal into a body-parsing 400).

`StringGuard`, inside it, refuses with 422 `invalid-input` a request carrying a string that no
store keeps: PostgreSQL refuses a NUL (U+0000) in text, and no UTF-8 encodes a lone surrogate
(U+D800 to U+DFFF, which JSON can spell as `"\\ud800"`). It checks the percent-decoded path
and query (which must be UTF-8 text without a NUL: a surrogate there can only be spelled as
invalid UTF-8) and every member name and string value of a JSON body. The answer's `errors`
name the first such string: `loc` is `path`, `query.<name>` or `body.<member>.<index>...`.

`AnsweredErrors` keeps the client's keep-alive connection after an unexpected error that was
already answered (500) and logged: Starlette raises it on after answering, and uvicorn closes
the connection of an app that raised.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollhouse.api.problems import problem_response_at
from tollhouse.errors import InvalidInput, PayloadTooLarge, TollhouseError

NUL = "contains a NUL character (U+0000)"
SURROGATE = "contains a lone surrogate (U+D800 to U+DFFF)"
NOT_UTF8 = "is not valid UTF-8 text"

_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")


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
            buffered = await _read_body(receive, max_bytes=self.max_bytes)
            if buffered is None:
                await self._refuse(scope, receive, send)
                return
            receive = _replay(buffered, receive)
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(f"request body is larger than {self.max_bytes} bytes")
        await _answer(error, scope, receive, send)


class StringGuard:
    """Wraps an ASGI app; refuses bad strings as the module says. Sits inside `BodyLimit`: it
    reads the whole body before the app runs, and replays it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = _url_error(scope)
        if found is None:
            messages = await _read_body(receive)
            assert messages is not None
            receive = _replay(messages, receive)
            if messages[-1]["type"] == "http.request":
                found = body_error(b"".join(m.get("body", b"") for m in messages))
        if found is None:
            await self.app(scope, receive, send)
            return
        loc, msg = found
        error = InvalidInput(f"{loc} {msg}", errors=[{"loc": loc, "msg": msg}])
        await _answer(error, scope, receive, send)


class AnsweredErrors:
    """Wraps an ASGI app that answers its own errors (FastAPI's, whose 500 handler logs them,
    `problems.unexpected_response`): an `Exception` raised after a complete answer goes no
    further. One raised before (or during a streamed body) does: the server answers 500 or
    closes the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answered = False

        async def sending(message: Message) -> None:
            nonlocal answered
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if not answered:
                raise


def body_error(body: bytes) -> tuple[str, str] | None:
    """`(loc, msg)` of the first NUL or lone surrogate in the strings of a JSON `body`, as
    Python's `json` (FastAPI's parser) reads them; None if it has none or is not JSON.

    Most bodies are not parsed: a NUL needs its escape `\\u0000`, a lone surrogate an escape
    too or bytes no UTF-8 has (`json` reads them, as it reads UTF-16 and UTF-32, whose text
    has NUL bytes). Of the rest, one `orjson` reads has no lone surrogate (it refuses them)."""
    if b"\\u" not in body and b"\xed" not in body and b"\x00" not in body:
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return None
    else:
        if b"\\u0000" not in body:
            return None
    return _string_error(document)


def _string_error(document: Any) -> tuple[str, str] | None:
    """The first bad string of a parsed JSON document, depth first (no recursion: the
    document may be as deep as the body is long)."""
    pending: list[tuple[Any, str]] = [(document, "body")]
    while pending:
        value, loc = pending.pop()
        if isinstance(value, str):
            if (msg := _string_msg(value)) is not None:
                return loc, msg
        elif isinstance(value, dict):
            for name in value:
                if (msg := _string_msg(name)) is not None:
                    return loc, "a member name " + msg
            pending.extend((item, f"{loc}.{name}") for name, item in reversed(value.items()))
        elif isinstance(value, list):
            pending.extend((item, f"{loc}.{i}") for i, item in reversed(list(enumerate(value))))
    return None


def _string_msg(text: str) -> str | None:
    found = _BAD_CHARACTER.search(text)
    if found is None:
        return None
    return NUL if found.group() == "\x00" else SURROGATE


def _url_error(scope: Scope) -> tuple[str, str] | None:
    """`(loc, msg)` of a path or query that is not UTF-8 text without a NUL, or None."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass")
    msg = _encoded_msg(raw_path.partition(b"?")[0])
    if msg is not None:
        return "path", msg
    query: bytes = scope.get("query_string", b"")
    if not query:
        return None
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        msg = _encoded_msg(name)
        if msg is not None:
            return "query", msg
        msg = _encoded_msg(value)
        if msg is not None:
            return "query." + unquote_to_bytes(name.replace(b"+", b" ")).decode(), msg
    return None


def _encoded_msg(encoded: bytes) -> str | None:
    """Why percent-encoded `encoded` is not UTF-8 text without a NUL, or None."""
    if b"%" not in encoded and b"\x00" not in encoded and encoded.isascii():
        return None
    try:
        text = unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        return NOT_UTF8
    return NUL if "\x00" in text else None


async def _read_body(receive: Receive, *, max_bytes: int | None = None) -> list[Message] | None:
    """The request's messages up to its last body chunk (or a disconnect); None once past
    `max_bytes`."""
    messages: list[Message] = []
    seen = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        seen += len(message.get("body", b""))
        if max_bytes is not None and seen > max_bytes:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives back `messages`, then defers to the real one (disconnects)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _answer(error: TollhouseError, scope: Scope, receive: Receive, send: Send) -> None:
    path = scope.get("path", "")
    response = problem_response_at(error, path)
    await response(scope, receive, send)
