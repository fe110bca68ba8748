"""The session guard on both stores, with a frozen clock: what it admits, what it refuses and
why, how it counts tokens it has not stored yet, and when it ends a session in the database.

Catalog: `analysis` ($1, 600 s or 100 tokens) is required by `analyst`; `extra` ($0.50, an
hour, no token cap) covers the `text` category without being required.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tollhouse.catalog import Usage, load_catalog_text
from tollhouse.clock import FrozenClock
from tollhouse.customers import service as customers
from tollhouse.events import service as events
from tollhouse.gateway.session_guard import SessionGuard
from tollhouse.ledger import Ledger
from tollhouse.metering import CheckedUsageEvent, UsageRecorder
from tollhouse.sessions import SessionEnded, SessionRequired
from tollhouse.sessions import service as sessions
from tollhouse.storage import Database

CATALOG = load_catalog_text("""
version: "guard-test"
plans: {free: {rank: 0}}
categories: {text: {requests_per_minute: 10}, vision: {requests_per_minute: 10}}
upstreams: {up: {base_url: "http://127.0.0.1:9"}}
models:
  analyst: {category: vision, upstream: up}
  chat: {category: text, upstream: up}
  other: {category: vision, upstream: up}
session_products:
  analysis: {price: "1.00", duration: 600, max_tokens: 100, models: [analyst], required: true}
  extra: {price: "0.50", duration: 3600, categories: [text]}
""")


class Changes:
    """Records the guard's `on_change` calls (the runtime would tell every process)."""

    def __init__(self) -> None:
        self.customers: list[str] = []

    async def __call__(self, customer_id: str) -> None:
        self.customers.append(customer_id)


@pytest.fixture
async def ledger(db: Database, clock: FrozenClock) -> AsyncIterator[Ledger]:
    async with Ledger(db, clock=clock) as started:
        yield started


@pytest.fixture
async def recorder(db: Database, clock: FrozenClock) -> AsyncIterator[UsageRecorder]:
    recorder = UsageRecorder(db, clock=clock, known_meters={"input_tokens", "output_tokens"})
    await recorder.start()
    yield recorder
    await recorder.stop()


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def guard(db: Database, ledger: Ledger, clock: FrozenClock, changes: Changes) -> SessionGuard:
    return SessionGuard(db, ledger, catalog=CATALOG, clock=clock, on_change=changes)


async def new_customer(db: Database, ledger: Ledger, clock: FrozenClock) -> str:
    async with db.transaction() as session:
        customer = await customers.create(session, name="Ada", clock=clock)
    await ledger.grant(customer.id, 10_000_000, idempotency_key=f"seed-{customer.id}")
    return customer.id


async def start(
    db: Database, ledger: Ledger, clock: FrozenClock, customer_id: str, product: str, key: str
) -> str:
    started = await sessions.start(
        db,
        ledger,
        catalog=CATALOG,
        clock=clock,
        customer_id=customer_id,
        product=product,
        idempotency_key=key,
    )
    return started.session.id


async def store(recorder: UsageRecorder, customer_id: str, session_id: str, tokens: int) -> None:
    """The usage events of a call that used `tokens` input tokens in the session."""
    await recorder.record(
        [
            CheckedUsageEvent(
                id=f"call-{tokens}-{recorder.stats.batches}",
                customer_id=customer_id,
                meter="input_tokens",
                value=tokens,
                occurred_at=recorder.clock.now(),
                session_id=session_id,
            )
        ]
    )


def used(tokens: int) -> Usage:
    return Usage(input_tokens=tokens)


async def test_models_no_product_covers_pass_untouched(
    guard: SessionGuard, db: Database, ledger: Ledger, clock: FrozenClock
) -> None:
    customer_id = await new_customer(db, ledger, clock)
    assert await guard.admit(customer_id, CATALOG.model("other")) is None
    assert await guard.admit(customer_id, CATALOG.model("chat")) is None  # covered, not required


async def test_a_required_model_without_a_session_names_the_product_and_price(
    guard: SessionGuard, db: Database, ledger: Ledger, clock: FrozenClock
) -> None:
    customer_id = await new_customer(db, ledger, clock)
    with pytest.raises(SessionRequired) as refused:
        await guard.admit(customer_id, CATALOG.model("analyst"))
    extra = refused.value.extra
    assert (extra["product"], extra["price_micros"], extra["products"]) == (
        "analysis",
        1_000_000,
        ["analysis"],
    )
    assert "1.000000 USD for 600 s or 100 tokens" in refused.value.detail


async def test_tokens_counted_in_memory_refuse_before_they_are_stored(
    guard: SessionGuard,
    db: Database,
    ledger: Ledger,
    clock: FrozenClock,
    recorder: UsageRecorder,
    changes: Changes,
) -> None:
    customer_id = await new_customer(db, ledger, clock)
    session_id = await start(db, ledger, clock, customer_id, "analysis", "a")
    live = await guard.admit(customer_id, CATALOG.model("analyst"))
    assert live is not None and live.id == session_id
    guard.count(live, used(60))
    guard.invalidate(customer_id)  # a reload keeps what is counted and not stored
    again = await guard.admit(customer_id, CATALOG.model("analyst"))
    assert again is live and (live.tokens, live.pending) == (60, 60)

    guard.count(live, used(50))  # crosses the cap of 100: served, and the last
    with pytest.raises(SessionEnded) as refused:
        await guard.admit(customer_id, CATALOG.model("analyst"))
    assert (refused.value.extra["session_id"], refused.value.extra["reason"]) == (
        session_id,
        "tokens",
    )
    await guard.finish(live)  # nothing stored yet: the database still counts 0
    assert changes.customers == []

    await store(recorder, customer_id, session_id, 60)
    await store(recorder, customer_id, session_id, 50)
    guard.stored(live, used(60))
    guard.stored(live, used(50))
    await guard.finish(live)
    assert changes.customers == [customer_id]
    async with db.transaction() as session:
        view = await sessions.get(session, session_id, clock=clock)
        ended = await events.list_events(session, customer_id=customer_id, types=["session.ended"])
    assert (view.status, view.end_reason, view.tokens_used) == ("ended", "tokens", 110)
    assert [event.data["session_id"] for event in ended.events] == [session_id]


async def test_the_time_cap_refuses_at_expiry(
    guard: SessionGuard, db: Database, ledger: Ledger, clock: FrozenClock
) -> None:
    customer_id = await new_customer(db, ledger, clock)
    session_id = await start(db, ledger, clock, customer_id, "analysis", "a")
    live = await guard.admit(customer_id, CATALOG.model("analyst"))
    assert live is not None
    clock.advance(599)
    assert live.seconds_left(clock.now()) == 1
    assert await guard.admit(customer_id, CATALOG.model("analyst")) is live
    clock.advance(1)
    with pytest.raises(SessionEnded) as refused:
        await guard.admit(customer_id, CATALOG.model("analyst"))
    assert (refused.value.extra["session_id"], refused.value.extra["reason"]) == (
        session_id,
        "duration",
    )


async def test_a_session_started_elsewhere_is_seen_after_the_recheck_interval(
    guard: SessionGuard, db: Database, ledger: Ledger, clock: FrozenClock
) -> None:
    """Another process started it and its announcement was lost: the refused customer is read
    again at most once a second, so the session is found within that bound."""
    customer_id = await new_customer(db, ledger, clock)
    with pytest.raises(SessionRequired):
        await guard.admit(customer_id, CATALOG.model("analyst"))
    session_id = await start(db, ledger, clock, customer_id, "analysis", "elsewhere")
    with pytest.raises(SessionRequired):
        await guard.admit(customer_id, CATALOG.model("analyst"))
    clock.advance(timedelta(seconds=1).total_seconds())
    live = await guard.admit(customer_id, CATALOG.model("analyst"))
    assert live is not None and live.id == session_id
