"""The HTTP request being handled, for its log lines and its metrics.

`begin(headers)` opens a `RequestContext` when a request arrives (`api.observed.Observed`,
around the whole app) and puts it in a context variable, which the tasks the request starts
inherit (a stream's settlement, for instance). Log lines read its `request_id`
(`observability.logs`); `problems` notes the code of the problem it answered
(`note_problem`); the gateway reads `started` and, when tollhouse made the id, uses it as the
call's id (`generated`).

The request id: the client's `X-Request-Id` when it is well-formed (1 to 128 characters of
letters, digits and `._:;=+/@-`, which UUIDs, ULIDs and the ids proxies and load balancers add
all are), else a new `req_...` id (`tollhouse.ids.new_id`). It is echoed in the answer's
`X-Request-Id`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from contextvars import ContextVar, Token

from tollhouse.ids import new_id

REQUEST_ID_HEADER = b"x-request-id"
"""The request and response header carrying the request id (lower case, as ASGI has it)."""

_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:;=+/@-]{1,128}")


class RequestContext:
    """One request: its id, whether tollhouse made that id, when it arrived, and the code
    of the problem it was answered with (if any)."""

    __slots__ = ("generated", "problem", "request_id", "started")

    def __init__(self, request_id: str, *, generated: bool, started: float) -> None:
        self.request_id = request_id
        """The client's `X-Request-Id` when well-formed, else a new `req_...` id."""
        self.generated = generated
        """True when tollhouse made `request_id` (unique; the client sent none usable)."""
        self.started = started
        """`time.perf_counter()` when the request arrived."""
        self.problem: str | None = None
        """The `code` of the problem+json the request was answered with, if any."""


CURRENT: ContextVar[RequestContext | None] = ContextVar("tollhouse_request", default=None)
"""The request being handled by this task (None outside requests: background jobs)."""


def begin(
    headers: Iterable[tuple[bytes, bytes]],
) -> tuple[RequestContext, Token[RequestContext | None]]:
    """Open the context of a request with these ASGI `headers`, current until `end(token)`."""
    started = time.perf_counter()
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _WELL_FORMED.fullmatch(value):
                context = RequestContext(value.decode("ascii"), generated=False, started=started)
                return context, CURRENT.set(context)
            break
    context = RequestContext(new_id("req"), generated=True, started=started)
    return context, CURRENT.set(context)


def end(token: Token[RequestContext | None]) -> None:
    """Close the context `begin` opened."""
    CURRENT.reset(token)


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside requests."""
    context = CURRENT.get()
    return None if context is None else context.request_id


def note_problem(code: str) -> None:
    """Remember that the request being handled is answered with the problem `code` (its
    denial reason in the request metrics); nothing outside requests."""
    context = CURRENT.get()
    if context is not None:
        context.problem = code
