"""A Hypothesis state machine over the money domain, checked against a pure-Python model.

The story: two customers on the `pro` plan get grants (with an expiry and a priority), holds
(with an expiry), partial captures, voids, refunds of a grant (`reverse_grant`, what a
payment's refund does) and of a charge (`billing.refund`: a credit note and a new lot),
revokes, flat session starts and stops, metered (compute) sessions run for a few minutes and
stopped, time moving forward and the expiry sweep, in any order Hypothesis picks, through the
`Ledger` writer and the sessions and billing services as the app calls them, on a SQLite file
and on PostgreSQL. After every step the wallet (available, held, each live lot's rest in
spend order), what each customer spent, the state of every hold, and `check_invariants` must
match `Model`, a few dozen lines of arithmetic over lots and holds that knows nothing of
accounts, batches or caches.

The model's rules are the ledger's documented ones: holds draw live lots in spend order
(expiring first, soonest first, then lower priority, then older, then id); a capture consumes
the hold's draws in order and gives the rest back to the lots it came from (a revoked lot
sends it on to issuance); money given back to an expired lot is not available and the sweep
takes it; a grant's refund takes at most the lot's rest; a charge's refund gives back at most
what its capture took less earlier refunds, as a new lot without expiry; a flat session's fee
is a hold captured at the price; a metered session's bill is `ceil(seconds * rate / 3600)`
micros of its run, captured from its start hold. Metered sessions here stop within their
minimum run, so no extension slice is due and no tick runs.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.support.background import in_background

from tollhouse.billing import BillingTerms, ChargeNotRefundable, RefundExceedsCharge
from tollhouse.billing import service as billing
from tollhouse.catalog import Catalog, load_catalog_text
from tollhouse.clock import FrozenClock
from tollhouse.customers import service as customers
from tollhouse.ledger import (
    HoldNotOpen,
    InsufficientCredit,
    Ledger,
)
from tollhouse.ledger import service as ledger_service
from tollhouse.sessions import SessionActive, SessionStatus
from tollhouse.sessions import service as sessions
from tollhouse.sessions.models import SessionSlice
from tollhouse.storage import Database
from tollhouse.storage.migrate import upgrade_async

T = TypeVar("T")

CATALOG_TEXT = """
version: "state-machine"
plans:
  free: {rank: 0}
  pro: {rank: 10, resource_tiers: [small], session_rates: {small: "0.075"}}
categories: {text: {requests_per_minute: 10}}
upstreams: {up: {base_url: "http://127.0.0.1:9"}}
models: {chat: {category: text, upstream: up}}
session_products:
  hour: {price: "0.25", duration: 3600, categories: [text]}
compute_sessions: {min_run: 900, slice: 300, low_credit_slices: 2}
"""
FLAT_FEE_MICROS = 250_000
"""The `hour` product's price."""
FLAT_SECONDS = 3600
RATE_MICROS_PER_HOUR = 75_000
"""`pro` on the `small` tier."""
MIN_RUN_SECONDS = 900
START_HOLD_MICROS = 18_750
"""15 min at 75,000 micros/h: what a metered start holds."""
HOLD_TTL_SECONDS = 3600
"""The ledger's default hold life."""

EXAMPLES = 30
"""Runs per store; with `STEPS` steps each this keeps a store under ~60 s on two cores."""
STEPS = 30
SEED_MICROS = 5_000_000
"""Each customer's first grant: enough for a few sessions and holds."""
KEYS = itertools.count()
"""Numbers idempotency keys: billing refunds' keys are unique in the whole database."""
START = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


# -- the model ---------------------------------------------------------------------------


@dataclass
class Lot:
    id: str
    spend_key: tuple[Any, ...]
    remaining: int
    expires_at: datetime | None
    revoked: bool = False

    def is_live(self, now: datetime) -> bool:
        return not self.revoked and (self.expires_at is None or self.expires_at > now)


@dataclass
class Hold:
    id: str
    customer: str
    amount: int
    expires_at: datetime
    draws: list[tuple[str, int]]
    status: str = "open"
    captured: int = 0
    refunded: int = 0
    """Micros of the capture given back by refunds."""


@dataclass
class Model:
    """Lots and holds per customer, and the arithmetic of the ledger's rules."""

    lots: dict[str, dict[str, Lot]] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)
    spent: dict[str, int] = field(default_factory=dict)
    flat_until: dict[str, datetime] = field(default_factory=dict)
    """Customer -> when its active flat session ends."""

    def add_customer(self, customer: str) -> None:
        self.lots[customer], self.spent[customer] = {}, 0

    def available(self, customer: str, now: datetime) -> int:
        return sum(lot.remaining for lot in self.lots[customer].values() if lot.is_live(now))

    def spendable(self, customer: str, now: datetime) -> list[tuple[str, int]]:
        """(lot id, remaining) of the live lots with money left, in spend order."""
        lots = [lot for lot in self.lots[customer].values() if lot.is_live(now) and lot.remaining]
        return [(lot.id, lot.remaining) for lot in sorted(lots, key=lambda lot: lot.spend_key)]

    def held(self, customer: str) -> int:
        return sum(
            h.amount for h in self.holds.values() if h.customer == customer and h.status == "open"
        )

    def draw(self, customer: str, amount: int, now: datetime) -> list[tuple[str, int]]:
        """Take `amount` from live lots in spend order (the caller checked it is there)."""
        live = [
            lot for lot in self.lots[customer].values() if lot.is_live(now) and lot.remaining > 0
        ]
        draws, left = [], amount
        for lot in sorted(live, key=lambda lot: lot.spend_key):
            take = min(lot.remaining, left)
            lot.remaining -= take
            draws.append((lot.id, take))
            left -= take
            if not left:
                break
        assert left == 0
        return draws

    def give_back(self, hold: Hold, lot_id: str, part: int) -> None:
        lot = self.lots[hold.customer][lot_id]
        if not lot.revoked:
            lot.remaining += part

    def capture(self, hold: Hold, amount: int) -> None:
        left = amount
        for lot_id, part in hold.draws:
            take = min(part, left)
            left -= take
            self.give_back(hold, lot_id, part - take)
        hold.status, hold.captured = "captured", amount
        self.spent[hold.customer] += amount

    def release(self, hold: Hold, status: str) -> None:
        for lot_id, part in hold.draws:
            self.give_back(hold, lot_id, part)
        hold.status = status

    def is_sweep_due(self, now: datetime) -> bool:
        """An open hold or a lot with money left is past its expiry."""
        holds = (h.status == "open" and h.expires_at <= now for h in self.holds.values())
        lots = (
            lot.remaining and lot.expires_at is not None and lot.expires_at <= now
            for lots in self.lots.values()
            for lot in lots.values()
        )
        return any(holds) or any(lots)

    def sweep(self, now: datetime) -> None:
        for hold in self.holds.values():
            if hold.status == "open" and hold.expires_at <= now:
                self.release(hold, "expired")
        for lots in self.lots.values():
            for lot in lots.values():
                if lot.expires_at is not None and lot.expires_at <= now:
                    lot.remaining = 0


# -- the system under test, on a loop of its own --------------------------------------------


@dataclass
class System:
    """A started `Ledger` on `db`, the catalog and the clock, served on `loop`."""

    db: Database
    ledger: Ledger
    catalog: Catalog
    clock: FrozenClock
    loop: asyncio.AbstractEventLoop

    def run(self, work: Awaitable[T]) -> T:
        """Run `work` on the system's loop; its result or its exception."""

        async def wrapped() -> T:
            return await work

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout=60)


@asynccontextmanager
async def _system(store: str, directory: Path) -> AsyncIterator[System]:
    if store == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / 'tollhouse.db'}"
        await upgrade_async(url)
    else:
        url = await create_postgres_database()
    db = Database(url)
    clock = FrozenClock(START)
    try:
        async with Ledger(db, clock=clock) as ledger:
            catalog = load_catalog_text(CATALOG_TEXT)
            yield System(db, ledger, catalog, clock, asyncio.get_running_loop())
    finally:
        await db.dispose()
        if store == "postgres":
            await drop_postgres_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def system(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[System]:
    with in_background(lambda: _system(request.param, tmp_path)) as served:
        yield served


# -- the machine ------------------------------------------------------------------------


class MoneyMachine(RuleBasedStateMachine):
    """Rules call the ledger and the sessions service, then apply the same step to `Model`."""

    system: System
    """Set by the test before the machine runs."""

    customers = Bundle("customers")
    grants = Bundle("grants")
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()

    @property
    def now(self) -> datetime:
        return self.system.clock.now()

    def key(self, prefix: str) -> str:
        """An idempotency key never used before in the database (shared by all examples)."""
        return f"{prefix}-{next(KEYS)}"

    @initialize(target=customers)
    def two_customers(self) -> Any:
        """Two customers, each with `SEED_MICROS` that never expire."""
        ids = []
        for name in ("Ada", "Grace"):
            customer = self.system.run(self._new_customer(name))
            self.model.add_customer(customer)
            self.grant(customer, SEED_MICROS, None, 0)
            ids.append(customer)
        return multiple(*ids)

    async def _new_customer(self, name: str) -> str:
        async with self.system.db.transaction() as session:
            customer = await customers.create(
                session, name=name, plan="pro", clock=self.system.clock
            )
        return customer.id

    # grants, refunds, revokes

    @rule(
        target=grants,
        customer=customers,
        amount=st.integers(1, 2_000_000),
        expires_in=st.none() | st.sampled_from([600, 1800, 3600, 7200]),
        priority=st.integers(0, 3),
    )
    def grant(self, customer: str, amount: int, expires_in: int | None, priority: int) -> Any:
        expires_at = None if expires_in is None else self.now + timedelta(seconds=expires_in)
        view = self.system.run(
            self.system.ledger.grant(
                customer, amount, idempotency_key=self.key("grant"), expires_at=expires_at,
                priority=priority,
            )
        )  # fmt: skip
        key = (expires_at is None, expires_at, priority, view.created_at, view.id)
        self.model.lots[customer][view.id] = Lot(view.id, key, amount, expires_at)
        return (customer, view.id)

    @rule(grant=grants, amount=st.integers(1, 2_000_000))
    def refund(self, grant: tuple[str, str], amount: int) -> None:
        customer, grant_id = grant
        reversal = self.system.run(
            self.system.ledger.reverse_grant(grant_id, amount, idempotency_key=self.key("refund"))
        )
        lot = self.model.lots[customer][grant_id]
        take = min(amount, lot.remaining)
        assert reversal.reversed_micros == take
        lot.remaining -= take

    @rule(grant=consumes(grants))
    def revoke(self, grant: tuple[str, str]) -> None:
        customer, grant_id = grant
        view = self.system.run(self.system.ledger.revoke_grant(grant_id))
        assert view.revoked_at is not None
        lot = self.model.lots[customer][grant_id]
        lot.revoked, lot.remaining = True, 0

    @precondition(lambda self: bool(self.model.holds))
    @rule(pick=st.integers(0, 1000), share=st.integers(1, 1100))
    def refund_charge(self, pick: int, share: int) -> None:
        """Refund part of a charge (a hold's or a flat session's fee) through billing: a
        credit note and a new lot of the refunded micros, without expiry."""
        hold = self.model.holds[sorted(self.model.holds)[pick % len(self.model.holds)]]
        amount = max(1, hold.amount * share // 1000)
        try:
            refunded = self.system.run(
                billing.refund(
                    self.system.db, self.system.ledger, terms=BillingTerms(),
                    clock=self.system.clock, hold_id=hold.id, amount_micros=amount,
                    idempotency_key=self.key("refund-charge"),
                )
            )  # fmt: skip
        except ChargeNotRefundable:
            assert hold.status != "captured" or hold.captured == 0, hold
            return
        except RefundExceedsCharge:
            assert amount > hold.captured - hold.refunded, hold
            return
        assert hold.status == "captured" and amount <= hold.captured - hold.refunded, hold
        assert refunded.grant_id is not None
        hold.refunded += amount
        now = self.now
        key = (True, None, 0, now, refunded.grant_id)
        self.model.lots[hold.customer][refunded.grant_id] = Lot(
            refunded.grant_id, key, amount, None
        )

    # holds

    @rule(
        target=holds,
        customer=customers,
        amount=st.integers(1, 1_000_000),
        expires_in=st.none() | st.integers(60, 7200),
    )
    def hold(self, customer: str, amount: int, expires_in: int | None) -> Any:
        expires_at = None if expires_in is None else self.now + timedelta(seconds=expires_in)
        available = self.model.available(customer, self.now)
        try:
            view = self.system.run(self.system.ledger.hold(customer, amount, expires_at=expires_at))
        except InsufficientCredit:
            assert available < amount, f"refused a hold of {amount} with {available} available"
            return multiple()
        assert available >= amount, f"held {amount} with only {available} available"
        draws = self.model.draw(customer, amount, self.now)
        ttl = self.now + timedelta(seconds=HOLD_TTL_SECONDS)
        self.model.holds[view.id] = Hold(view.id, customer, amount, expires_at or ttl, draws)
        return view.id

    @rule(hold_id=holds, share=st.integers(0, 1000))
    def capture(self, hold_id: str, share: int) -> None:
        hold = self.model.holds[hold_id]
        amount = hold.amount * share // 1000
        try:
            view = self.system.run(self.system.ledger.capture(hold_id, amount))
        except HoldNotOpen:
            assert hold.status != "open" or hold.expires_at <= self.now, hold
            assert not (hold.status == "captured" and hold.captured == amount), hold
            return
        if hold.status == "captured":
            assert hold.captured == amount  # an idempotent repeat
        else:
            assert hold.status == "open" and hold.expires_at > self.now, hold
            self.model.capture(hold, amount)
        assert (view.status, view.captured_amount) == ("captured", amount)

    @rule(hold_id=holds)
    def void(self, hold_id: str) -> None:
        hold = self.model.holds[hold_id]
        try:
            view = self.system.run(self.system.ledger.void(hold_id))
        except HoldNotOpen:
            assert hold.status == "captured", hold
            return
        if hold.status == "open":
            self.model.release(hold, "voided")
        assert view.status == hold.status

    # time

    @rule(seconds=st.integers(1, 3600))
    def advance(self, seconds: int) -> None:
        self.system.clock.advance(seconds)

    @precondition(lambda self: self.model.is_sweep_due(self.now))
    @rule()
    def sweep(self) -> None:
        self.system.run(self.system.ledger.sweep())
        self.model.sweep(self.now)

    # sessions

    @rule(customer=customers)
    def start_flat_session(self, customer: str) -> None:
        ends = self.model.flat_until.get(customer)
        active = ends is not None and ends > self.now
        available = self.model.available(customer, self.now)
        try:
            started = self.system.run(
                sessions.start(
                    self.system.db, self.system.ledger, catalog=self.system.catalog,
                    clock=self.system.clock, customer_id=customer, product="hour",
                    idempotency_key=self.key("flat"),
                )
            )  # fmt: skip
        except SessionActive:
            assert active, "a session was said active after it ended"
            return
        except InsufficientCredit:
            assert not active and available < FLAT_FEE_MICROS, available
            return
        assert not active, "a second flat session started while one was active"
        assert available >= FLAT_FEE_MICROS
        view = started.session
        assert (view.paid_with, view.fee_micros) == ("wallet", FLAT_FEE_MICROS)
        assert view.hold_id is not None
        draws = self.model.draw(customer, FLAT_FEE_MICROS, self.now)
        hold = Hold(view.hold_id, customer, FLAT_FEE_MICROS, self.now, draws)
        self.model.holds[hold.id] = hold
        self.model.capture(hold, FLAT_FEE_MICROS)
        self.model.flat_until[customer] = self.now + timedelta(seconds=FLAT_SECONDS)

    @rule(customer=customers, seconds=st.integers(1, MIN_RUN_SECONDS))
    def run_metered_session(self, customer: str, seconds: int) -> None:
        available = self.model.available(customer, self.now)
        try:
            started = self.system.run(
                sessions.start_metered(
                    self.system.db, self.system.ledger, catalog=self.system.catalog,
                    clock=self.system.clock, customer_id=customer, resource_tier="small",
                    idempotency_key=self.key("metered"),
                )
            )  # fmt: skip
        except InsufficientCredit:
            assert available < START_HOLD_MICROS, available
            return
        assert available >= START_HOLD_MICROS, available
        session_id = started.session.id
        hold_ids = self.system.run(self._slice_holds(session_id))
        assert len(hold_ids) == 1
        draws = self.model.draw(customer, START_HOLD_MICROS, self.now)
        hold = Hold(hold_ids[0], customer, START_HOLD_MICROS, self.now, draws)
        self.model.holds[hold.id] = hold
        self.system.clock.advance(seconds)
        stopped = self.system.run(
            sessions.stop(
                self.system.db, self.system.ledger, session_id, catalog=self.system.catalog,
                clock=self.system.clock,
            )
        )  # fmt: skip
        bill = math.ceil(seconds * RATE_MICROS_PER_HOUR / 3600)
        assert (stopped.status, stopped.billed_micros) == ("ended", bill)
        assert stopped.settled_at is not None
        self.model.capture(hold, bill)

    async def _slice_holds(self, session_id: str) -> list[str]:
        async with self.system.db.transaction() as session:
            rows = await session.scalars(
                select(SessionSlice.hold_id)
                .where(SessionSlice.session_id == session_id)
                .order_by(SessionSlice.number)
            )
            return [hold_id for hold_id in rows if hold_id is not None]

    @precondition(lambda self: bool(self.model.flat_until))
    @rule(customer=customers)
    def stop_flat_session(self, customer: str) -> None:
        """Terminate the customer's flat session, if one is active: no refund."""
        ends = self.model.flat_until.get(customer)
        if ends is None or ends <= self.now:
            return
        found = self.system.run(self._active_flat(customer))
        assert found is not None, "the model's active session is not active"
        self.system.run(
            sessions.stop(
                self.system.db, self.system.ledger, found, catalog=self.system.catalog,
                clock=self.system.clock, customer_id=customer,
            )
        )  # fmt: skip
        del self.model.flat_until[customer]

    async def _active_flat(self, customer: str) -> str | None:
        async with self.system.db.transaction() as session:
            page = await sessions.list_sessions(
                session, clock=self.system.clock, customer_id=customer,
                status=SessionStatus.ACTIVE,
            )  # fmt: skip
        flat = [s.id for s in page if s.kind == "flat"]
        return flat[0] if flat else None

    # the check after every step

    @invariant()
    def matches_the_model(self) -> None:
        if not self.model.lots:
            return
        self.system.run(self._check())

    async def _check(self) -> None:
        now = self.now
        async with self.system.db.transaction() as session:
            assert await ledger_service.check_invariants(session) == []
            for customer in self.model.lots:
                wallet = await ledger_service.balance(session, customer, now=now)
                expected = (self.model.available(customer, now), self.model.held(customer))
                assert (wallet.available_micros, wallet.held_micros) == expected, customer
                lots = [(g.id, g.remaining) for g in wallet.grants]
                assert lots == self.model.spendable(customer, now), customer
                captures = await ledger_service.transactions(
                    session, customer, kinds=["capture"], limit=ledger_service.MAX_PAGE
                )
                assert -sum(e.amount for e in captures) == self.model.spent[customer]
            for hold in self.model.holds.values():
                stored = await ledger_service.get_hold(session, hold.id)
                assert (stored.status, stored.captured_amount) == (hold.status, hold.captured)


def test_the_ledger_agrees_with_the_model_after_every_step(system: System) -> None:
    """Any sequence of money operations leaves the ledger where the model says it is."""
    machine = type("Machine", (MoneyMachine,), {"system": system})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
