"""Forward an admitted call upstream, pass the answer through, and settle what it really used.

Settlement (after the answer is sent, so the client never waits for it):
capture the price of the real usage (see `settle` for usage above the hold), record the usage
events, charge the token window the tokens beyond the prompt estimate, and mark the key used.

What is charged when things go wrong:

| case | charge |
| --- | --- |
| upstream unreachable / 5xx | nothing: hold voided, 502 |
| upstream timeout before the answer starts | nothing: hold voided, 504 |
| upstream 4xx (bad request to the model) | nothing: hold voided, the upstream's status and body passed through |
| stream ends without a usage chunk | prompt estimate + delivered text counted locally, `usage_source = counted` |
| client disconnects mid-stream | same: prompt + text received from upstream until the disconnect |
| upstream breaks mid-stream | same, and the stream ends where it broke |
| process dies before settling | the hold expires and is voided by the sweeper: nothing charged |
| hold answered before its commit, never stored | the price, by a hold captured at once (or uncaptured), flagged `hold_lost` |
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import aiohttp
import orjson

from tollhouse.catalog import Usage
from tollhouse.gateway.admission import Admission
from tollhouse.gateway.deps import GatewayDeps
from tollhouse.gateway.errors import UpstreamError, UpstreamTimeout
from tollhouse.gateway.estimate import Kind
from tollhouse.gateway.usage import StreamMeter, UsageSource, usage_from_body
from tollhouse.keys import Principal
from tollhouse.ledger import HoldNotFound, InsufficientCredit
from tollhouse.metering import CheckedUsageEvent, RecordableEvent, UsageEventIn
from tollhouse.metering.schemas import MAX_VALUE

STREAM_CHUNK_TIMEOUT_SECONDS = 120.0
"""Longest silence tolerated between two chunks of a stream before it is treated as broken."""


@dataclass(frozen=True, slots=True)
class Route:
    """One OpenAI-compatible route: its path here, its path under the upstream's base URL."""

    path: str
    upstream_path: str
    kind: Kind


ROUTES = (
    Route("/v1/chat/completions", "/chat/completions", "chat"),
    Route("/v1/completions", "/completions", "completion"),
    Route("/v1/embeddings", "/embeddings", "embedding"),
    Route("/v1/images/generations", "/images/generations", "image"),
    Route("/v1/audio/speech", "/audio/speech", "speech"),
)


@dataclass(slots=True)
class Call:
    """Everything known about one admitted gateway call."""

    request_id: str
    route: Route
    principal: Principal
    admission: Admission
    started_at: datetime
    body: dict[str, Any]
    raw: bytes
    stream: bool


@dataclass(slots=True)
class Forwarded:
    """The upstream's answer to pass to the client: whole `content`, or a `stream` of bytes.

    A whole answer carries its real `usage` (and where it came from): the caller sends the
    answer, then `settle`s it, in its own task. A stream settles itself when it ends."""

    status: int
    content_type: str
    content: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    usage: tuple[Usage, UsageSource] | None = None


def upstream_payload(call: Call) -> bytes:
    """The body to send upstream: the client's, with the upstream's model name, and usage
    requested in streams (`stream_options.include_usage`). Unchanged bytes when possible."""
    model = call.admission.model
    if model.upstream_model == model.id and not call.stream:
        return call.raw
    body = dict(call.body)
    body["model"] = model.upstream_model
    if call.stream:
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
    """Send `call` upstream and return its answer (a whole answer with its usage to settle
    once sent; a stream settles in the background when it ends).

    Raises (after voiding the hold):
        UpstreamTimeout: no answer within `upstream_timeout_seconds` (504).
        UpstreamError: connection failure or a 5xx from the upstream (502).
    """
    model = call.admission.model
    upstream = deps.catalog.upstreams[model.upstream]
    headers = {"Content-Type": "application/json"}
    api_key = deps.catalog.upstream_api_key(upstream.name)
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    url = upstream.base_url.rstrip("/") + call.route.upstream_path
    timeout = upstream_timeout(deps.settings.upstream_timeout_seconds, stream=call.stream)
    request = deps.http.post(url, data=upstream_payload(call), headers=headers, timeout=timeout)
    try:
        # aiohttp's `total` bounds a whole call (headers and body); a stream has none, so the
        # wait for its headers is bounded here.
        response = await (
            asyncio.wait_for(request, deps.settings.upstream_timeout_seconds)
            if call.stream
            else request
        )
    except TimeoutError:
        await _void(deps, call)
        raise UpstreamTimeout(f"upstream '{upstream.name}' did not answer in time") from None
    except aiohttp.ClientError as exc:
        await _void(deps, call)
        raise UpstreamError(f"upstream '{upstream.name}' failed: {type(exc).__name__}") from None
    content_type = response.headers.get("Content-Type", "application/json")
    if response.status >= 400:
        content = await _read_quietly(response)
        await _void(deps, call)
        if response.status >= 500:
            raise UpstreamError(
                f"upstream '{upstream.name}' answered {response.status}",
                upstream_status=response.status,
            )
        return Forwarded(response.status, content_type, content)
    if call.stream and content_type.startswith("text/event-stream"):
        return Forwarded(200, content_type, stream=_stream_through(deps, call, response))
    try:
        content = await (
            asyncio.wait_for(response.read(), deps.settings.upstream_timeout_seconds)
            if call.stream  # a stream call answered without events: no `total` to bound it
            else response.read()
        )
    except TimeoutError:
        await _void(deps, call)
        raise UpstreamTimeout(f"upstream '{upstream.name}' did not finish in time") from None
    except aiohttp.ClientError as exc:
        await _void(deps, call)
        raise UpstreamError(f"upstream '{upstream.name}' failed: {type(exc).__name__}") from None
    finally:
        response.release()
    parsed: Any = None
    if content_type.startswith("application/json"):
        try:
            parsed = orjson.loads(content)
        except orjson.JSONDecodeError:
            parsed = None
    usage = usage_from_body(
        call.route.kind, parsed, call.admission.estimate, call.admission.model.tokenizer
    )
    return Forwarded(response.status, content_type, content, usage=usage)


async def _stream_through(
    deps: GatewayDeps, call: Call, response: aiohttp.ClientResponse
) -> AsyncIterator[bytes]:
    """Yield the upstream's bytes unchanged while metering them; settle when it ends, however."""
    meter = StreamMeter(call.admission.model.tokenizer)
    interrupted = False
    try:
        async for chunk in response.content.iter_any():
            meter.feed(chunk)
            yield chunk
    except (TimeoutError, aiohttp.ClientError):
        interrupted = True
    finally:
        response.close()
        usage, source = meter.result(call.admission.estimate)
        deps.spawn(
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


def usage_events(
    call: Call, usage: Usage, *, cost_micros: int, properties: dict[str, Any]
) -> list[RecordableEvent]:
    """The usage events of one call: `api_calls` = 1 plus each nonzero quantity.

    Built as `CheckedUsageEvent`s, without pydantic's validation (most of the cost of building
    them): every field comes from values made or checked here (ids, the admitted customer and
    key, catalog meters and model, an aware UTC time, scalar properties). A quantity beyond
    what an event may carry is still validated (`UsageEventIn`), and refused.
    """
    quantities = {
        "api_calls": 1,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "images": usage.images,
        "characters": usage.characters,
    }
    props = {**properties, "cost_micros": cost_micros, "route": call.route.kind}
    occurred_at = call.started_at.astimezone(UTC)
    return [
        (CheckedUsageEvent if value <= MAX_VALUE else UsageEventIn)(
            id=f"{call.request_id}:{meter}",
            customer_id=call.admission.customer_id,
            meter=meter,
            value=value,
            occurred_at=occurred_at,
            key_id=call.principal.key_id,
            model=call.admission.model.id,
            properties=props,
        )
        for meter, value in quantities.items()
        if value or meter == "api_calls"
    ]


async def settle(
    deps: GatewayDeps,
    call: Call,
    usage: Usage,
    source: UsageSource,
    *,
    interrupted: bool = False,
) -> None:
    """Charge the real price, record usage, charge the token window, mark the key used.

    The usage events are queued, and waited for only when the call reserved a quota (see
    `QuotaGuard`); `Runtime.drain` waits for them all.

    The hold is captured up to the real price. When the real price is above the hold (the
    upstream's tokenizer counted more than the local estimate, or it ignored `max_tokens`),
    the excess is charged with a second hold captured at once; if the wallet cannot cover it,
    the shortfall is recorded as `uncaptured_micros` on the usage events, never as an overdraft.
    A hold that was never stored (answered before its commit, and its batch failed; see
    `Ledger.hold`) is flagged `hold_lost`, and the whole price is charged that way.
    """
    admission = call.admission
    cost = admission.model.price.cost(usage)
    properties: dict[str, Any] = {"usage_source": source}
    captured = 0
    if admission.hold is not None:
        properties["hold_id"] = admission.hold.id
        held = min(cost, admission.hold.amount)
        try:
            await deps.ledger.capture(admission.hold.id, held)
            captured = held
        except HoldNotFound:
            # Answered before its commit, and its batch failed (`Ledger.hold`): the call is
            # charged below as if it had had no hold.
            properties["hold_lost"] = True
    if cost > captured:
        captured += await _charge_excess(deps, call, cost - captured, properties)
    if interrupted:
        properties["interrupted"] = True
    events = usage_events(call, usage, cost_micros=captured, properties=properties)
    if admission.quota is None:
        deps.recorder.record_later(events)  # not waited for: a failure to write is logged
    else:
        # A capped meter's counter takes the usage once it is stored, so a quota reload in
        # between counts it twice (refusing early), never not at all.
        await deps.recorder.record(events)
    deps.quotas.settle(admission.quota, usage)
    if admission.token_limit is not None:
        limit, key = admission.token_limit
        charged = max(1, min(admission.estimate.input_tokens, limit.amount))
        extra = usage.input_tokens + usage.output_tokens - charged
        if extra > 0:
            await deps.limiter.consume(limit, key, extra)
    deps.authenticator.touch(call.principal.key_id)


async def _charge_excess(
    deps: GatewayDeps, call: Call, excess: int, properties: dict[str, Any]
) -> int:
    """Charge `excess` micros beyond the hold; returns what was charged (0 or `excess`)."""
    try:
        extra = await deps.ledger.hold(
            call.admission.customer_id,
            excess,
            idempotency_key=f"{call.request_id}:excess",
            currency=deps.catalog.currency,
            metadata={"model": call.admission.model.id, "excess_of": call.request_id},
        )
    except InsufficientCredit:
        properties["uncaptured_micros"] = excess
        return 0
    await deps.ledger.capture(extra.id, excess)
    properties["excess_hold_id"] = extra.id
    return excess
