"""Sending deliveries: claim the due ones under a lease, POST them, log each attempt.

`deliver_due(db, http, clock=...)` is one pass, as tests run it; the worker (`webhooks.worker`)
runs the same steps, `claim_due`, then `send` and `Recorder.record` for each, keeping up to
its concurrency of attempts under way:

1. claim: in one short transaction, up to `limit` pending deliveries of enabled endpoints
   whose `next_attempt_at` has come and whose lease (if any) has run out get
   `leased_until = now + LEASE_SECONDS` and this pass's `lease_token`, by a conditional
   UPDATE that re-checks the lease (on PostgreSQL the candidates are also read `FOR UPDATE
   SKIP LOCKED`): two processes never send the same attempt at once, and a process that
   dies mid-attempt leaves a lease that runs out, after which the delivery is due again;
2. send: outside any transaction (no connection is held while waiting on a receiver), each
   claimed delivery is POSTed concurrently with its signed headers (`webhooks.signing`),
   `ATTEMPT_TIMEOUT_SECONDS` at most, redirects not followed;
3. record: a short transaction logs the attempts (`webhook_attempts`; the worker writes
   those that end together in one, `Recorder`) and, for each whose lease is still its
   claim's, moves the delivery on: `succeeded`, due again per
   `webhooks.schedule`, or `failed`; the endpoint's failure streak is cleared on success,
   started on a failure, and the endpoint disabled when the streak reaches
   `DISABLE_AFTER_SECONDS`.

At least once on the wire: a receiver may get an event again (an answer lost after it
committed, a lease run out); `webhook-id` is the same every time so it can drop repeats.
Deliveries are not ordered: events to one endpoint may arrive in any order.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from tollhouse.clock import Clock
from tollhouse.events import Event, EventView
from tollhouse.ids import new_id
from tollhouse.storage import Database
from tollhouse.webhooks import schedule, signing
from tollhouse.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

LEASE_SECONDS = 60
"""How long a claimed delivery belongs to the claiming process (well above the timeout)."""
ATTEMPT_TIMEOUT_SECONDS = 15.0
"""Total time one attempt may take, from connecting to the answer's status and snippet."""
RESPONSE_SNIPPET_BYTES = 1000
"""How much of an answer's body the log keeps."""
MAX_ERROR_CHARS = 500
DEFAULT_BATCH = 16
"""Deliveries one pass claims and sends at once (the worker's concurrency)."""


@dataclass(frozen=True)
class Claimed:
    """A delivery this pass holds the lease of, with what sending it needs."""

    delivery_id: str
    lease_token: str
    attempt_count: int
    """Attempts made before this one."""
    endpoint_id: str
    url: str
    secret: str
    event: EventView


@dataclass(frozen=True)
class Outcome:
    """What one attempt got."""

    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    error: str | None
    latency_ms: int
    response_body: str


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until <= now)


async def claim_due(db: Database, *, clock: Clock, limit: int = DEFAULT_BATCH) -> list[Claimed]:
    """Lease up to `limit` due deliveries (oldest due first) to this caller.

    Raises:
        SQLAlchemyError: the database failed (nothing leased).
    """
    now = clock.now()
    token = new_id("lse")
    async with db.transaction() as session:
        due = (
            select(WebhookDelivery.id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
                WebhookDelivery.next_attempt_at <= now,
                _lease_free(now),
                WebhookEndpoint.enabled,
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
        if not db.is_sqlite:
            due = due.with_for_update(of=WebhookDelivery, skip_locked=True)
        ids = list(await session.scalars(due))
        if not ids:
            return []
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id.in_(ids),
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
                _lease_free(now),
            )
            .values(leased_until=now + timedelta(seconds=LEASE_SECONDS), lease_token=token)
        )
        rows = await session.execute(
            select(WebhookDelivery, WebhookEndpoint, Event)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .join(Event, Event.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.lease_token == token)
            .order_by(WebhookDelivery.next_attempt_at)
        )
        return [
            Claimed(
                delivery_id=delivery.id,
                lease_token=token,
                attempt_count=delivery.attempt_count,
                endpoint_id=endpoint.id,
                url=endpoint.url,
                secret=endpoint.secret,
                event=EventView.of(event),
            )
            for delivery, endpoint, event in rows
        ]


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


async def send(
    http: aiohttp.ClientSession,
    claimed: Claimed,
    *,
    clock: Clock,
    timeout_seconds: float = ATTEMPT_TIMEOUT_SECONDS,
) -> Outcome:
    """POST one delivery, `timeout_seconds` at most, and say what came of it; never raises
    for what the receiver or the network does (a timeout, a refused connection, a bad answer
    are failed outcomes)."""
    body = signing.payload(claimed.event)
    attempted_at = clock.now()
    headers = signing.signed_headers(
        claimed.secret, message_id=claimed.event.id, timestamp=attempted_at, body=body
    )
    started = time.perf_counter()
    status: int | None = None
    snippet = b""
    error: str | None = None
    try:
        async with http.post(
            claimed.url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        ) as response:
            status = response.status
            snippet = await response.content.read(RESPONSE_SNIPPET_BYTES)
    except TimeoutError:
        error = f"timeout after {timeout_seconds:g} s"
    except (aiohttp.ClientError, OSError, ValueError) as failure:
        error = _short(f"{type(failure).__name__}: {failure}")
    latency_ms = round((time.perf_counter() - started) * 1000)
    succeeded = status is not None and 200 <= status < 300
    if status is not None and not succeeded:
        error = f"HTTP {status}"
    return Outcome(
        attempted_at=attempted_at,
        succeeded=succeeded,
        status_code=status,
        error=error,
        latency_ms=latency_ms,
        response_body=snippet.decode("utf-8", errors="replace"),
    )


def _next_state(
    claimed: Claimed, outcome: Outcome, now: datetime, rng: random.Random
) -> tuple[DeliveryStatus, datetime | None]:
    """The delivery's status and next attempt after `outcome` (`webhooks.schedule`)."""
    if outcome.succeeded:
        return DeliveryStatus.SUCCEEDED, None
    next_at = schedule.next_attempt_at(claimed.attempt_count + 1, now, rng)
    return (DeliveryStatus.PENDING if next_at is not None else DeliveryStatus.FAILED), next_at


async def record(
    db: Database,
    results: Sequence[tuple[Claimed, Outcome]],
    *,
    clock: Clock,
    rng: random.Random,
) -> list[DeliveryStatus | None]:
    """Log each attempt and, while the lease is still its claim's, move its delivery and
    endpoint on (see the module's docstring), all in one transaction. Returns, in order, the
    status each attempt gave its delivery: `succeeded`, `pending` (due again) or `failed`
    (given up); None for a delivery deleted meanwhile (its endpoint removed: nothing logged).

    Raises:
        SQLAlchemyError: the database failed (nothing recorded; the leases run out and the
            deliveries are sent again).
    """
    now = clock.now()
    async with db.transaction() as session:
        ids = [claimed.delivery_id for claimed, _ in results]
        existing = set(
            await session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.id.in_(ids)))
        )
        statuses: list[DeliveryStatus | None] = []
        for claimed, outcome in results:
            if claimed.delivery_id not in existing:
                statuses.append(None)
                continue
            status, next_at = _next_state(claimed, outcome, now, rng)
            statuses.append(status)
            session.add(
                WebhookAttempt(
                    delivery_id=claimed.delivery_id,
                    attempted_at=outcome.attempted_at,
                    succeeded=outcome.succeeded,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    latency_ms=outcome.latency_ms,
                    response_body=outcome.response_body,
                )
            )
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == claimed.delivery_id,
                    WebhookDelivery.lease_token == claimed.lease_token,
                )
                .values(
                    status=status.value,
                    attempt_count=WebhookDelivery.attempt_count + 1,
                    next_attempt_at=next_at,
                    leased_until=None,
                    lease_token=None,
                    last_attempt_at=outcome.attempted_at,
                    last_status_code=outcome.status_code,
                    last_error=outcome.error,
                    completed_at=None if status is DeliveryStatus.PENDING else now,
                )
            )
            await _track_endpoint(session, claimed.endpoint_id, outcome.succeeded, now)
    return statuses


class Recorder:
    """Group commit of attempts' outcomes: `await recorder.record(claimed, outcome)` returns
    once it is written; the outcomes that arrive while a write is under way are written
    together by the next, in one transaction (one commit for many attempts, which matters
    on SQLite, whose one writer the gateway shares)."""

    def __init__(self, db: Database, *, clock: Clock, rng: random.Random) -> None:
        self.db = db
        self.clock = clock
        self.rng = rng
        self._waiting: list[tuple[Claimed, Outcome, asyncio.Future[DeliveryStatus | None]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def record(self, claimed: Claimed, outcome: Outcome) -> DeliveryStatus | None:
        """Record one outcome; returns the status it gave its delivery (see `record`).

        Raises:
            SQLAlchemyError: the write failed (the lease runs out; sent again).
        """
        done: asyncio.Future[DeliveryStatus | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((claimed, outcome, done))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write(), name="webhooks.record")
        return await done

    async def flush(self) -> None:
        """Wait until every outcome handed in so far is written (or failed to be)."""
        while self._writing is not None and not self._writing.done():
            await asyncio.shield(self._writing)

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                statuses = await record(
                    self.db,
                    [(claimed, outcome) for claimed, outcome, _ in batch],
                    clock=self.clock,
                    rng=self.rng,
                )
            except Exception as error:
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(error)
            else:
                for (*_, done), status in zip(batch, statuses, strict=True):
                    if not done.done():
                        done.set_result(status)


async def _track_endpoint(
    session: AsyncSession, endpoint_id: str, succeeded: bool, now: datetime
) -> None:
    """Clear the endpoint's failure streak, or start it, or disable the endpoint when the
    streak is long enough (conditional updates: concurrent attempts agree)."""
    endpoints = update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if succeeded:
        await session.execute(
            endpoints.where(WebhookEndpoint.failing_since.is_not(None)).values(failing_since=None)
        )
        return
    await session.execute(
        endpoints.where(WebhookEndpoint.failing_since.is_(None)).values(failing_since=now)
    )
    days = schedule.DISABLE_AFTER_SECONDS // 86400
    await session.execute(
        endpoints.where(
            WebhookEndpoint.enabled,
            WebhookEndpoint.failing_since <= schedule.disable_cutoff(now),
        ).values(
            enabled=False,
            disabled_at=now,
            disabled_reason=f"every attempt failed for {days} days",
            updated_at=now,
        )
    )


async def deliver_due(
    db: Database,
    http: aiohttp.ClientSession,
    *,
    clock: Clock,
    limit: int = DEFAULT_BATCH,
    rng: random.Random | None = None,
    timeout_seconds: float = ATTEMPT_TIMEOUT_SECONDS,
) -> list[Outcome]:
    """One pass: claim up to `limit` due deliveries, send them concurrently (each
    `timeout_seconds` at most), then record every outcome in one transaction. Returns the
    outcomes (`limit` of them: more may be due).

    Raises:
        SQLAlchemyError: claiming or recording failed (leases taken run out; nothing lost).
    """
    claimed = await claim_due(db, clock=clock, limit=limit)
    outcomes = await asyncio.gather(
        *(send(http, item, clock=clock, timeout_seconds=timeout_seconds) for item in claimed)
    )
    await record(
        db, list(zip(claimed, outcomes, strict=True)), clock=clock, rng=rng or random.Random()
    )
    return list(outcomes)
