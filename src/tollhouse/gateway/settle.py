"""Settle an answered gateway call: charge what it really used, record it, settle its limits.

Runs after the answer is sent (or, for a stream, when it ends), so the client never waits for
it. What is charged when things go wrong is in `gateway/proxy.py`'s table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC
from functools import partial
from typing import Any, TypeVar

from tollhouse.catalog import Usage
from tollhouse.errors import TollhouseError
from tollhouse.gateway.admission import Admission
from tollhouse.gateway.call import Call
from tollhouse.gateway.deps import GatewayDeps
from tollhouse.gateway.quotas import quantities as meter_quantities
from tollhouse.gateway.usage import UsageSource
from tollhouse.ledger import HoldNotOpen, InsufficientCredit
from tollhouse.metering import CheckedUsageEvent, RecordableEvent, UsageEventIn
from tollhouse.metering.schemas import MAX_VALUE
from tollhouse.ratelimit import Limit, RateLimitStorageError

T = TypeVar("T")

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.05
"""First wait before a failed capture or charge is tried again; it doubles each time."""
RETRY_MAX_SECONDS = 5.0
"""Longest wait between two tries of a capture or charge."""


def usage_events(
    call: Call, usage: Usage, *, cost_micros: int, properties: dict[str, Any]
) -> list[RecordableEvent]:
    """The usage events of one call: `api_calls` = 1 plus each nonzero quantity, carrying
    the id of the session that paid for it, if any, and the upstream that served it.

    Built as `CheckedUsageEvent`s, without pydantic's validation (most of the cost of building
    them): every field comes from values made or checked here (ids, the admitted customer and
    key, catalog meters and model, an aware UTC time, scalar properties). A quantity beyond
    what an event may carry is still validated (`UsageEventIn`), and refused.
    """
    quantities = {"api_calls": 1, **meter_quantities(usage)}
    props = {**properties, "cost_micros": cost_micros, "route": call.route.kind}
    session_id = call.admission.session.id if call.admission.session is not None else None
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
            session_id=session_id,
            upstream=call.upstream,
            properties=props,
        )
        for meter, value in quantities.items()
        if value or meter == "api_calls"
    ]


def cost_of(admission: Admission, usage: Usage) -> int:
    """What `usage` costs the admitted call, in micros: the model's price of it, rounded up
    once (`Price.cost`), or 0 when a session pays for the call. `settle` charges it; the
    gateway tells the client before the charge is written (`x-tollhouse-cost-micros`)."""
    return 0 if admission.session is not None else admission.model.price.cost(usage)


async def settle(
    deps: GatewayDeps,
    call: Call,
    usage: Usage,
    source: UsageSource,
    *,
    interrupted: bool = False,
) -> None:
    """Charge the real price, record usage, settle the token window, mark the key used.

    The usage events are queued, and waited for only when the call reserved a quota (see
    `QuotaGuard`) or ran in a session; `Runtime.drain` waits for them all. A session's call
    was counted into it (`SessionGuard.count`) by whoever knew its usage first; once its
    events are stored, a session that reached its token cap is ended (`SessionGuard.finish`).

    The hold is captured up to the real price. When the real price is above the hold (the
    upstream's tokenizer counted more than the local estimate, or it ignored `max_tokens`),
    the rest is charged on the wallet as far as its credit (and overdraft) covers it
    (`_charge_excess`); what it cannot cover is recorded as `uncaptured_micros` on the usage
    events, never as an overdraft. A capture or charge that fails for any reason but the
    ledger's answer (the database unreachable, a failed commit) is retried until it is
    written (`until_written`): a served call is never left uncharged. The token window took
    the whole estimate; the difference from the real usage is taken or given back.
    """
    admission = call.admission
    cost = cost_of(admission, usage)
    properties: dict[str, Any] = {"usage_source": source}
    captured = 0
    if admission.hold is not None:
        properties["hold_id"] = admission.hold.id
        captured = await _capture(deps, admission.hold.id, min(cost, admission.hold.amount))
    if cost > captured:
        captured += await _charge_excess(deps, call, cost - captured, properties)
    if interrupted:
        properties["interrupted"] = True
    events = usage_events(call, usage, cost_micros=captured, properties=properties)
    if admission.quota is None and admission.session is None:
        deps.recorder.record_later(events)  # not waited for: a failure to write is logged
    else:
        # A capped meter's counter (and a session's pending count) takes the usage once it
        # is stored, so a reload in between counts it twice (refusing early), never not at all.
        await until_written(partial(deps.recorder.record, events), f"usage of {call.request_id}")
    deps.quotas.settle(admission.quota, usage)
    if admission.session is not None:
        deps.sessions.stored(admission.session, usage)
        await deps.sessions.finish(admission.session)
    if admission.tokens is not None:
        await _settle_tokens(deps, call, admission.tokens, usage)
    deps.authenticator.touch(call.principal.key_id)


async def _settle_tokens(
    deps: GatewayDeps, call: Call, tokens: tuple[Limit, str, int], usage: Usage
) -> None:
    """Take from the token window what the call used beyond its reservation, or give back
    what it did not use. While the rate-limit storage is unreachable (fail-closed) the window
    cannot be corrected: that is logged once per call, and the window keeps the reservation."""
    limit, key, reserved = tokens
    used = usage.input_tokens + usage.output_tokens
    try:
        if used > reserved:
            await deps.limiter.consume(limit, key, used - reserved)
        elif used < reserved:
            await deps.limiter.refund(limit, key, reserved - used)
    except RateLimitStorageError as exc:
        log.warning(
            "token window of %s not settled to %d tokens (reserved %d): %s",
            call.request_id,
            used,
            reserved,
            exc.detail,
        )


async def until_written(write: Callable[[], Awaitable[T]], what: str) -> T:
    """`await write()`, again and again with exponential backoff (`RETRY_FIRST_SECONDS`
    doubling up to `RETRY_MAX_SECONDS`) while it fails with anything but a `TollhouseError`:
    the ledger's answers (insufficient credit, hold not open, ledger stopped) are final,
    anything else (a database unreachable, a failed commit) is logged and retried. The ledger's
    captures and keyed holds are idempotent, so a retry after an unknown outcome writes once.
    """
    delay = RETRY_FIRST_SECONDS
    while True:
        try:
            return await write()
        except TollhouseError:
            raise
        except Exception as exc:
            log.warning("%s failed (%r); retrying in %.2f s", what, exc, delay)
        await asyncio.sleep(delay)
        delay = min(2 * delay, RETRY_MAX_SECONDS)


async def _capture(deps: GatewayDeps, hold_id: str, amount: int) -> int:
    """Capture `amount` micros of the call's hold; returns what was captured: `amount`, or 0
    when the hold expired first (retries outlived it, and the sweeper voided it)."""
    try:
        await until_written(partial(deps.ledger.capture, hold_id, amount), f"capture of {hold_id}")
    except HoldNotOpen:
        return 0
    return amount


async def _charge_excess(
    deps: GatewayDeps, call: Call, excess: int, properties: dict[str, Any]
) -> int:
    """Charge up to `excess` micros beyond the hold, as far as the wallet covers it; returns
    what was charged (the rest goes to `properties["uncaptured_micros"]`).

    One hold captured at once, keyed by the call: a refusal stores nothing and says what the
    wallet has, so the next try asks for that, until a hold is granted or nothing is left.
    """
    amount = excess
    while amount > 0:
        hold = partial(
            deps.ledger.hold,
            call.admission.customer_id,
            amount,
            idempotency_key=f"{call.request_id}:excess",
            currency=deps.catalog.currency,
            metadata={"model": call.admission.model.id, "excess_of": call.request_id},
        )
        try:
            extra = await until_written(hold, f"excess charge of {call.request_id}")
        except InsufficientCredit as refused:
            covered = int(refused.extra["balance_micros"])
            covered += int(refused.extra["overdraft_available_micros"])
            amount = max(0, min(amount - 1, covered))
            continue
        capture = partial(deps.ledger.capture, extra.id, amount)
        await until_written(capture, f"capture of {extra.id}")
        properties["excess_hold_id"] = extra.id
        break
    if amount < excess:
        properties["uncaptured_micros"] = excess - amount
    return amount
