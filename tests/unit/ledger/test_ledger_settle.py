"""Capture and void: settle a hold at the actual cost, release the rest to the same lots."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tollhouse.clock import FrozenClock
from tollhouse.ledger import (
    CaptureExceedsHold,
    HoldNotFound,
    HoldNotOpen,
    Ledger,
)
from tollhouse.ledger import service as ledger_service
from tollhouse.storage import Database

from .conftest import Check, Counts, History, Wallet

ONE_DOLLAR = 1_000_000


class TestCapture:
    async def test_partial_capture_releases_the_rest_to_the_same_lots(
        self, ledger: Ledger, wallet: Wallet, clock: FrozenClock, consistent: Check
    ) -> None:
        promo = await ledger.grant(
            "cus_a", 300, idempotency_key="promo", expires_at=clock.now() + timedelta(days=1)
        )
        paid = await ledger.grant("cus_a", 700, idempotency_key="paid")
        hold = await ledger.hold("cus_a", 500)  # promo 300, then paid 200

        captured = await ledger.capture(hold.id, 250)

        assert (captured.status, captured.captured_amount) == ("captured", 250)
        assert captured.released_amount == 250
        remaining = {g.id: g.remaining for g in (await wallet("cus_a")).grants}
        assert remaining == {promo.id: 50, paid.id: 700}  # capture drew promo first
        assert (await wallet("cus_a")).held_micros == 0
        await consistent()

    async def test_capture_above_hold_raises(
        self, ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        hold = await ledger.hold("cus_a", 500)

        with pytest.raises(CaptureExceedsHold) as raised:
            await ledger.capture(hold.id, 501)

        assert (raised.value.status, raised.value.code) == (409, "capture-exceeds-hold")
        assert (await wallet("cus_a")).held_micros == 500  # still open
        await consistent()

    async def test_capture_twice_at_the_same_amount_is_idempotent(
        self, ledger: Ledger, wallet: Wallet, row_counts: Counts, consistent: Check
    ) -> None:
        await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        hold = await ledger.hold("cus_a", 500)
        first = await ledger.capture(hold.id, 400)
        before = await row_counts()

        again = await ledger.capture(hold.id, 400)

        assert again == replace(first, replayed=True)
        assert not first.replayed
        assert await row_counts() == before
        assert (await wallet("cus_a")).available_micros == ONE_DOLLAR - 400
        await consistent()

    async def test_capture_twice_at_another_amount_raises(
        self, ledger: Ledger, consistent: Check
    ) -> None:
        await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        hold = await ledger.hold("cus_a", 500)
        await ledger.capture(hold.id, 400)

        with pytest.raises(HoldNotOpen) as raised:
            await ledger.capture(hold.id, 300)
        assert (raised.value.status, raised.value.code) == (409, "hold-not-open")
        await consistent()

    async def test_capture_of_a_voided_hold_raises(self, sqlite_ledger: Ledger) -> None:
        await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        hold = await sqlite_ledger.hold("cus_a", 500)
        await sqlite_ledger.void(hold.id)

        with pytest.raises(HoldNotOpen):
            await sqlite_ledger.capture(hold.id, 0)

    async def test_capture_zero_releases_everything(
        self, sqlite_ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        hold = await sqlite_ledger.hold("cus_a", 500)

        captured = await sqlite_ledger.capture(hold.id, 0)

        assert (captured.status, captured.captured_amount) == ("captured", 0)
        assert (await wallet("cus_a")).available_micros == ONE_DOLLAR
        await consistent()

    async def test_capture_of_an_unknown_hold_raises_not_found(self, sqlite_ledger: Ledger) -> None:
        with pytest.raises(HoldNotFound) as raised:
            await sqlite_ledger.capture("hold_missing", 1)
        assert (raised.value.status, raised.value.code) == (404, "hold-not-found")

    async def test_capture_of_another_customers_hold_raises_not_found(
        self, sqlite_ledger: Ledger, sqlite_db: Database
    ) -> None:
        await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        hold = await sqlite_ledger.hold("cus_a", 500)

        with pytest.raises(HoldNotFound):
            await sqlite_ledger.capture(hold.id, 100, customer_id="cus_b")
        with pytest.raises(HoldNotFound):
            await sqlite_ledger.void(hold.id, customer_id="cus_b")
        async with sqlite_db.sessions() as session:
            with pytest.raises(HoldNotFound):
                await ledger_service.get_hold(session, hold.id, customer_id="cus_b")
            assert (await ledger_service.get_hold(session, hold.id)).status == "open"

    async def test_capture_after_the_hold_expired_raises(
        self, sqlite_ledger: Ledger, clock: FrozenClock
    ) -> None:
        await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        hold = await sqlite_ledger.hold("cus_a", 500, expires_at=clock.now() + timedelta(minutes=5))
        clock.advance(300)

        with pytest.raises(HoldNotOpen):
            await sqlite_ledger.capture(hold.id, 100)

    async def test_capture_records_revenue_and_release_entries(
        self, sqlite_ledger: Ledger, history: History
    ) -> None:
        await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        hold = await sqlite_ledger.hold("cus_a", 500)

        await sqlite_ledger.capture(hold.id, 300)

        latest = await history("cus_a", limit=3)
        assert [(e.kind, e.account_kind, e.amount) for e in latest] == [
            ("release", "grant", 200),
            ("release", "escrow", -200),
            ("capture", "escrow", -300),
        ]
        assert {e.hold_id for e in latest} == {hold.id}


class TestVoid:
    async def test_void_releases_everything_and_is_idempotent(
        self, ledger: Ledger, wallet: Wallet, row_counts: Counts, consistent: Check
    ) -> None:
        await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        hold = await ledger.hold("cus_a", 500)

        voided = await ledger.void(hold.id)
        before = await row_counts()
        again = await ledger.void(hold.id)

        assert voided.status == "voided"
        assert again == replace(voided, replayed=True)
        assert not voided.replayed
        assert await row_counts() == before
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (ONE_DOLLAR, 0)
        await consistent()

    async def test_void_of_a_captured_hold_raises(self, sqlite_ledger: Ledger) -> None:
        await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        hold = await sqlite_ledger.hold("cus_a", 500)
        await sqlite_ledger.capture(hold.id, 500)

        with pytest.raises(HoldNotOpen):
            await sqlite_ledger.void(hold.id)
