"""Forward an admitted call upstream and pass the answer through, charged: `gateway.settle`
charges what the call really used before the client gets a whole answer, or a stream's end
(its last event and cost comment), so that a call served in full is a call charged, even if
the process dies right after (a charge costs the answer one commit's wait; see `settle.charge`).

What is charged when things go wrong:

A model with fallback upstreams (`catalog.upstreams`) tries the next one on a connection error,
a timeout, a 5xx or a 429 before anything reached the client, under the same hold; the cases
below are what the last one tried answered.

| case | charge |
| --- | --- |
| upstream unreachable / 5xx | nothing: hold voided, 502 |
| upstream timeout before the answer starts | nothing: hold voided, 504 |
| upstream 4xx (bad request to the model, or the last upstream's 429) | nothing: hold voided, the upstream's status and body passed through |
| stream ends without a usage chunk | prompt estimate + delivered text counted locally, `usage_source = counted` |
| client disconnects mid-stream | same: prompt + text received from upstream until the disconnect |
| upstream breaks mid-stream | same, and the stream ends where it broke |
| the server stops (SIGTERM) with the call under way | a stream under way: settled as above; a call still waiting for its upstream when the shutdown grace ends: nothing, hold voided |
| process dies before the charge is committed | nothing was served (no whole answer, no stream's end): the hold expires and is voided by the sweeper, nothing charged |
| process dies after the charge, before or while the answer is sent | charged (the client may not have the answer: the upstream's work is paid, as for a client that leaves) |
| process dies mid-stream | the stream's client never saw its end: the hold expires and is voided, nothing charged |
| real price above the hold | the hold, then the rest on the wallet as far as it covers it; what it cannot is `uncaptured_micros` |
| the database does not answer before the call is forwarded | nothing: 503 `database-unavailable` with `Retry-After`, the upstream not called (a hold whose write was cut unanswered expires and is voided by the sweeper) |
| the database fails while charging | retried with backoff until written; the answer (a stream's end) waits for it up to `CHARGE_WAIT_SECONDS` (10 s), then is withheld (503 `database-unavailable`; a stream ends without its end) while the charge goes on: the upstream did the work, charged as for a client that leaves mid-stream. A served call is always charged |
| the charge fails for good (the ledger or recorder stopped, shutting down) | not served: a whole answer becomes the error (503), a stream ends without its end; the hold expires and is voided |
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import aiohttp
import orjson

from tollhouse.catalog import Protocol, Usage, attempt_order
from tollhouse.gateway.call import Call
from tollhouse.gateway.deps import GatewayDeps
from tollhouse.gateway.errors import UpstreamError, UpstreamTimeout
from tollhouse.gateway.estimate import Kind
from tollhouse.gateway.settle import CHARGE_WAIT_SECONDS, settle
from tollhouse.gateway.usage import (
    MessagesMeter,
    ResponsesMeter,
    StreamMeter,
    UsageSource,
    usage_from_body,
)
from tollhouse.observability import metrics

log = logging.getLogger(__name__)

STREAM_CHUNK_TIMEOUT_SECONDS = 120.0
"""Longest silence tolerated between two chunks of a stream before it is treated as broken."""


@dataclass(slots=True)
class Forwarded:
    """The upstream's answer to pass to the client: whole `content`, or a `stream` of bytes.

    A whole answer carries its real `usage` (and where it came from): the caller counts it
    into the call's session if any, `charge`s it, sends the answer, then `finish`es it. A
    stream counts and settles itself before it ends (`_stream_through`)."""

    status: int
    content_type: str
    content: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    usage: tuple[Usage, UsageSource] | None = None


USAGE_OPTION: frozenset[Kind] = frozenset({"chat", "completion"})
"""The route kinds whose streams carry usage only when asked (`stream_options`)."""

ANTHROPIC_VERSION = "2023-06-01"
"""The `anthropic-version` sent to an Anthropic upstream when the client names none (the
Messages API requires one)."""


def cost_comment(cost_micros: int) -> bytes:
    """The SSE comment that ends a stream with what it cost: `: x-tollhouse-cost-micros=N`
    (clients' SSE parsers skip comments; see the gateway route module)."""
    return b": x-tollhouse-cost-micros=%d\n\n" % cost_micros


def upstream_headers(
    call: Call, api_key: str | None, protocol: Protocol, content_type: str = "application/json"
) -> dict[str, str]:
    """The headers of the upstream request: its body's `content_type`, and the upstream's key
    as its protocol wants it (`Authorization: Bearer`, or Anthropic's `x-api-key` with the
    client's `anthropic-version` and `anthropic-beta` passed on)."""
    headers = {"Content-Type": content_type}
    if protocol == "anthropic":
        headers.update(call.passed_headers)
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        if api_key:
            headers["x-api-key"] = api_key
    elif api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _meter(call: Call) -> StreamMeter:
    """The reader of this call's stream, by its route's kind."""
    tokenizer = call.admission.model.tokenizer
    if call.route.kind == "responses":
        return ResponsesMeter(tokenizer)
    if call.route.kind == "messages":
        return MessagesMeter(tokenizer)
    return StreamMeter(tokenizer, pass_usage=asks_for_usage(call.body))


def asks_for_usage(body: dict[str, Any]) -> bool:
    """Whether a client's request body asks for the usage chunk at the end of a stream
    (`"stream_options": {"include_usage": true}`, OpenAI's switch for it)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def upstream_payload(call: Call, upstream_model: str) -> bytes:
    """The body to send upstream: the client's, with the upstream's model name
    (`upstream_model`), and usage requested in streams (`stream_options.include_usage`,
    needed to charge the call; the usage chunk reaches the client only if it asked, see
    `StreamMeter`; Responses and Messages streams always carry theirs). Unchanged bytes when
    possible."""
    asks = not call.stream or asks_for_usage(call.body) or call.route.kind not in USAGE_OPTION
    if upstream_model == call.admission.model.id and asks:
        return call.raw
    body = dict(call.body)
    body["model"] = upstream_model
    if not asks:
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {})}
        body["stream_options"]["include_usage"] = True
    return orjson.dumps(body)


@lru_cache(maxsize=64)
def upstream_timeout(seconds: float, *, stream: bool) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts of one upstream call, built once (immutable, and a measurable cost
    per call otherwise): `seconds` for a whole answer; a stream's headers are bounded by
    `forward`, its chunks by `STREAM_CHUNK_TIMEOUT_SECONDS` each."""
    return aiohttp.ClientTimeout(
        total=None if stream else seconds,
        sock_connect=10.0,
        sock_read=STREAM_CHUNK_TIMEOUT_SECONDS if stream else None,
    )


async def forward(deps: GatewayDeps, call: Call) -> Forwarded:
    """Send `call` upstream and return its answer (a whole answer with its usage to charge
    before it is sent; a stream charges itself before its end).

    The model's upstreams are tried in `catalog.attempt_order` (one upstream: just it). A
    connection error, a timeout, a 5xx or a 429 moves on to the next upstream while nothing
    has reached the client yet, under the call's one hold and one rate-limit take; any other
    4xx is the answer. A stream is answered once its upstream sends a 200 with
    `text/event-stream` headers, and is never retried after that. `call.upstream` names the
    upstream that answered (or was tried last). Each attempt's time (until its answer is
    read, or a stream's head) is added to `call.upstream_seconds` and observed in
    `tollhouse_upstream_latency_seconds`.

    Raises (after voiding the hold), when the last upstream failed too:
        UpstreamTimeout: no answer within the upstream's `timeout_seconds`, else the
            gateway's `upstream_timeout_seconds` (504).
        UpstreamError: connection failure or a 5xx from the upstream (502).
    """
    model = call.admission.model
    targets = attempt_order(model.upstreams)
    last = targets[-1]
    for target in targets:
        upstream = deps.catalog.upstreams[target.upstream]
        call.upstream = upstream.name
        seconds = target.timeout_seconds or deps.settings.upstream_timeout_seconds
        if call.upload is not None:
            payload, payload_type = call.upload.upstream_form(target.model)
        else:
            payload, payload_type = upstream_payload(call, target.model), "application/json"
        api_key = deps.catalog.upstream_api_key(upstream.name)
        headers = upstream_headers(call, api_key, upstream.protocol, payload_type)
        url = upstream.base_url.rstrip("/") + call.route.upstream_path
        timeout = upstream_timeout(seconds, stream=call.stream)
        request = deps.http.post(url, data=payload, headers=headers, timeout=timeout)
        failure: UpstreamError
        began = time.perf_counter()
        try:
            # aiohttp's `total` bounds a whole call (headers and body); a stream has none, so
            # the wait for its headers is bounded here.
            response = await (asyncio.wait_for(request, seconds) if call.stream else request)
            content_type = response.headers.get("Content-Type", "application/json")
            status = response.status
            if status >= 400:
                content = await _read_quietly(response)
                _waited(call, began)
                if status >= 500 or (status == 429 and target is not last):
                    raise UpstreamError(
                        f"upstream '{upstream.name}' answered {status}", upstream_status=status
                    )
                await _void(deps, call)
                return Forwarded(status, content_type, content)
            if call.stream and content_type.startswith("text/event-stream"):
                _waited(call, began)
                return Forwarded(200, content_type, stream=_stream_through(deps, call, response))
            try:
                content = await (
                    asyncio.wait_for(response.read(), seconds)
                    if call.stream  # a stream call answered without events: no `total` to bound it
                    else response.read()
                )
            finally:
                response.release()
            _waited(call, began)
        except asyncio.CancelledError:
            # The server's shutdown grace ended before the upstream answered: nothing served.
            deps.spawn(_void(deps, call), name=f"void {call.request_id}")
            raise
        except TimeoutError:
            _waited(call, began)
            failure = UpstreamTimeout(f"upstream '{upstream.name}' did not answer in time")
        except aiohttp.ClientError as exc:
            _waited(call, began)
            failure = UpstreamError(f"upstream '{upstream.name}' failed: {type(exc).__name__}")
        except UpstreamError as error:
            failure = error
        else:
            parsed: Any = None
            if content_type.startswith("application/json"):
                try:
                    parsed = orjson.loads(content)
                except orjson.JSONDecodeError:
                    parsed = None
            usage = usage_from_body(
                call.route.kind, parsed, call.admission.estimate, model.tokenizer
            )
            return Forwarded(status, content_type, content, usage=usage)
        if target is last:
            await _void(deps, call)
            raise failure
        log.warning(
            "%s; %s tries its next upstream (%s)", failure.detail, model.id, call.request_id
        )
    raise AssertionError("a model has at least one upstream")  # pragma: no cover


def _waited(call: Call, began: float) -> None:
    """An upstream attempt of `call` that began at `began` (`time.perf_counter()`) is over."""
    seconds = time.perf_counter() - began
    call.upstream_seconds += seconds
    metrics.observe_upstream(call.admission.model.id, seconds)


async def _stream_through(
    deps: GatewayDeps, call: Call, response: aiohttp.ClientResponse
) -> AsyncIterator[bytes]:
    """Yield the upstream's bytes while metering them, unchanged but for the usage-only chunk
    that only a client who asked for it gets (`StreamMeter`); once the upstream's stream is
    over (or broke), settle the call and wait for its charge, then yield the stream's end,
    which the meter held back (`data: [DONE]`, Responses' last event, Messages'
    `message_stop`), and what was charged as an SSE comment (`cost_comment`). A client that
    leaves first has it settled in the background for what was delivered. A charge not
    written within `CHARGE_WAIT_SECONDS` (it goes on), or that fails for good (logged), ends
    the stream without its end."""
    meter = _meter(call)
    interrupted = settled = False
    try:
        try:
            async for chunk in response.content.iter_any():
                passed = meter.feed(chunk)
                if passed:
                    yield passed
        except (TimeoutError, aiohttp.ClientError):
            interrupted = True
        settled = True
        settling = _settle_stream(deps, call, response, meter, interrupted)
        try:
            # Shielded: a server whose shutdown grace ends cancels the stream, not its charge.
            cost = await asyncio.wait_for(asyncio.shield(settling), CHARGE_WAIT_SECONDS)
        except TimeoutError:
            return  # the database fails the charge: it goes on; the client never sees the end
        except Exception:
            return  # logged by `spawn`: nothing was charged, the client never sees the end
        rest = meter.rest()
        if rest and (meter.done or not interrupted):
            yield rest
        yield cost_comment(cost)
    finally:
        if not settled:  # the client left (interrupted unless the stream had ended)
            _settle_stream(deps, call, response, meter, interrupted)


def _settle_stream(
    deps: GatewayDeps,
    call: Call,
    response: aiohttp.ClientResponse,
    meter: StreamMeter,
    interrupted: bool,
) -> asyncio.Task[int]:
    """Close the upstream's stream, count its usage into the call's session, settle it in
    its own task (waited for at shutdown); returns that task, whose result is what was
    charged, in micros."""
    response.close()
    usage, source = meter.result(call.admission.estimate)
    if call.admission.session is not None:
        deps.sessions.count(call.admission.session, usage)  # before the stream's end
    return deps.spawn(
        settle(deps, call, usage, source, interrupted=interrupted or not meter.done),
        name=f"settle {call.request_id}",
    )


async def _read_quietly(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await asyncio.wait_for(response.read(), 10.0)
    except (TimeoutError, aiohttp.ClientError):
        return b""
    finally:
        response.release()


async def _void(deps: GatewayDeps, call: Call) -> None:
    deps.quotas.settle(call.admission.quota, None)
    hold = call.admission.hold
    if hold is not None:
        await deps.ledger.void(hold.id)
