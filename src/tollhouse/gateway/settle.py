"""Settle an answered gateway call: charge what it really used, record it, settle its limits.

The charge comes first: a whole answer is sent, and a stream's end (its last event and its
cost comment) passed on, only once the call's capture (with any excess charge) and its usage
events are committed (`charge`); what follows the answer (`finish`: a session's cap, the
token window, the key's last use) never delays it. A served call is thus a charged call: a
process that dies after the answer leaves nothing to settle. What is charged when things go
wrong is in `gateway/proxy.py`'s table.
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
from tollhouse.metering import (
    CheckedUsageEvent,
    MeteringUnavailable,
    RecordableEvent,
    RecorderClosed,
    UsageEventIn,
)
from tollhouse.metering.schemas import MAX_VALUE
from tollhouse.ratelimit import Limit, RateLimitStorageError

T = TypeVar("T")

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.05
"""First wait before a failed capture or charge is tried again; it doubles each time."""
RETRY_MAX_SECONDS = 5.0
"""Longest wait between two tries of a capture or charge."""
CHARGE_WAIT_SECONDS = 10.0
"""Longest a whole answer waits for its charge (`charge`, retried while the database fails
it): then the client gets 503 `database-unavailable` instead of the answer, and the charge
goes on until written (the upstream did the work: charged as a client that leaves is)."""
HOLD_LIFE_MARGIN_SECONDS = 30.0
"""A hold that lives at least this much longer is captured while the usage events are
written (`charge`); one closer to its expiry is captured first, as its capture may find it
expired (and the events must then say what was charged instead)."""


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
    once (`Price.cost`), or 0 when a session pays for the call. `charge` charges it (or
    less, when the wallet cannot cover the part beyond the hold)."""
    return 0 if admission.session is not None else admission.model.price.cost(usage)


async def settle(
    deps: GatewayDeps,
    call: Call,
    usage: Usage,
    source: UsageSource,
    *,
    interrupted: bool = False,
) -> int:
    """`charge` the call, then `finish` it; returns what was charged, in micros."""
    charged = await charge(deps, call, usage, source, interrupted=interrupted)
    await finish(deps, call, usage)
    return charged


async def charge(
    deps: GatewayDeps,
    call: Call,
    usage: Usage,
    source: UsageSource,
    *,
    interrupted: bool = False,
) -> int:
    """Charge the real price and store the call's usage events; returns what was charged,
    in micros (`cost_of`, less any `uncaptured_micros`). Awaited before the answer is sent
    (a stream: before its end): once it returns, the call is billed, whatever happens next.

    The hold is captured up to the real price. When the real price is above the hold (the
    upstream's tokenizer counted more than the local estimate, or it ignored `max_tokens`),
    the rest is charged on the wallet as far as its credit (and overdraft) covers it
    (`_charge_excess`); what it cannot cover is recorded as `uncaptured_micros` on the usage
    events, never as an overdraft. In the usual case (the price within a hold that is not
    about to expire, see `HOLD_LIFE_MARGIN_SECONDS`, or nothing held and nothing to charge)
    the capture and the events are written at the same time, so the wait is one commit of
    the ledger's group writer and one of the recorder's, overlapped; otherwise the ledger's
    writes come first and the events say what they took.

    A capture, charge or write of the events that fails for any reason but the ledger's or
    the recorder's final answer (the database unreachable, a failed commit) is retried until
    it is written (`until_written`): a served call is never left uncharged. The events are
    then counted into a capped meter's counter and a session's stored usage (a reload in
    between counts them twice, refusing early, never not at all).

    Raises the final answers: a `TollhouseError` of the ledger (`LedgerClosed`) or of the
    recorder (`RecorderClosed`, `UnknownMeter`); the call is then not billed (its hold
    expires and is voided).
    """
    admission = call.admission
    cost = cost_of(admission, usage)
    properties: dict[str, Any] = {"usage_source": source}
    if interrupted:
        properties["interrupted"] = True
    hold = admission.hold
    if hold is not None:
        properties["hold_id"] = hold.id
    if cost <= (0 if hold is None else hold.amount) and (
        hold is None
        or (hold.expires_at - deps.clock.now()).total_seconds() > HOLD_LIFE_MARGIN_SECONDS
    ):
        events = usage_events(call, usage, cost_micros=cost, properties=properties)
        storing = asyncio.ensure_future(_store(deps, call, events))
        try:
            captured = 0 if hold is None else await _capture(deps, hold.id, cost)
            if captured < cost:  # the hold was voided all the same (a very long outage)
                captured = await _charge_excess(deps, call, cost, properties)
                if captured < cost:
                    log.error(
                        "%s: %d micros of its cost not charged (its hold expired, the wallet"
                        " was short); its usage events say %d",
                        call.request_id,
                        cost - captured,
                        cost,
                    )
        finally:
            await storing
    else:
        captured = 0
        if hold is not None:
            captured = await _capture(deps, hold.id, min(cost, hold.amount))
        if cost > captured:
            captured += await _charge_excess(deps, call, cost - captured, properties)
        events = usage_events(call, usage, cost_micros=captured, properties=properties)
        await _store(deps, call, events)
    deps.quotas.settle(admission.quota, usage)
    if admission.session is not None:
        deps.sessions.stored(admission.session, usage)
    return captured


async def finish(deps: GatewayDeps, call: Call, usage: Usage) -> None:
    """What follows a charged call, after its answer: end its session if that reached its
    token cap (`SessionGuard.finish`), settle the token window, mark the key used."""
    admission = call.admission
    if admission.session is not None:
        await deps.sessions.finish(admission.session)
    if admission.tokens is not None:
        await _settle_tokens(deps, call, admission.tokens, usage)
    deps.authenticator.touch(call.principal.key_id)


async def _store(deps: GatewayDeps, call: Call, events: list[RecordableEvent]) -> None:
    """Write the call's usage events and wait for their commit, again while the database
    fails them (`MeteringUnavailable`): the ids are the call's, so a retry stores them once."""
    await until_written(
        partial(deps.recorder.record, events),
        f"usage of {call.request_id}",
        transient=_unavailable,
    )


def _unavailable(error: TollhouseError) -> bool:
    """The recorder's answer that the database failed a write (a later try may pass), not
    that it was stopped."""
    return isinstance(error, MeteringUnavailable) and not isinstance(error, RecorderClosed)


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


async def until_written(
    write: Callable[[], Awaitable[T]],
    what: str,
    *,
    transient: Callable[[TollhouseError], bool] | None = None,
) -> T:
    """`await write()`, again and again with exponential backoff (`RETRY_FIRST_SECONDS`
    doubling up to `RETRY_MAX_SECONDS`) while it fails with anything but a `TollhouseError`
    (or with one that `transient` says a later try may not meet): the ledger's answers
    (insufficient credit, hold not open, ledger stopped) are final, anything else (a database
    unreachable, a failed commit) is logged and retried. The ledger's captures and keyed holds
    are idempotent, so a retry after an unknown outcome writes once.
    """
    delay = RETRY_FIRST_SECONDS
    while True:
        try:
            return await write()
        except TollhouseError as error:
            if transient is None or not transient(error):
                raise
            log.warning("%s failed (%s); retrying in %.2f s", what, error.detail, delay)
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
