"""Transaction history: the customer's side of every transfer, newest first, paged by id."""

from __future__ import annotations

from datetime import timedelta

from tollhouse.clock import FrozenClock
from tollhouse.ledger import Ledger

from .conftest import History

HOUR_SECONDS = 3600


class TestHistory:
    async def test_history_pages_newest_first_with_before_id(
        self, ledger: Ledger, history: History
    ) -> None:
        for n in range(5):
            await ledger.grant("cus_a", 100 + n, idempotency_key=f"g{n}", description=f"pack {n}")

        first = await history("cus_a", limit=3)
        second = await history("cus_a", limit=3, before_id=first[-1].id)

        amounts = [t.amount for t in first + second]
        assert amounts == [104, 103, 102, 101, 100]
        assert [t.description for t in first] == ["pack 4", "pack 3", "pack 2"]
        assert all(t.kind == "grant" and t.account_kind == "grant" for t in first + second)

    async def test_history_filters_by_kind_and_by_time(
        self, ledger: Ledger, history: History, clock: FrozenClock
    ) -> None:
        start = clock.now()
        await ledger.grant("cus_a", 1_000, idempotency_key="g0")
        clock.advance(HOUR_SECONDS)
        hold = await ledger.hold("cus_a", 300)
        await ledger.capture(hold.id, 300)
        clock.advance(HOUR_SECONDS)
        await ledger.grant("cus_a", 50, idempotency_key="g1")

        grants = await history("cus_a", kinds=["grant"])
        moves = await history("cus_a", kinds=["hold", "capture"])
        middle = await history(
            "cus_a",
            since=start + timedelta(seconds=HOUR_SECONDS),
            until=start + timedelta(seconds=2 * HOUR_SECONDS),
        )
        none = await history(
            "cus_a",
            kinds=["grant"],
            since=start + timedelta(seconds=HOUR_SECONDS),
            until=start + timedelta(seconds=2 * HOUR_SECONDS),
        )

        assert [t.amount for t in grants] == [50, 1_000]
        assert moves[0].kind == "capture"  # newest first
        assert sorted((t.kind, t.amount) for t in moves) == [
            ("capture", -300),
            ("hold", -300),
            ("hold", 300),
        ]
        assert {t.kind for t in middle} == {"hold", "capture"}
        assert none == []

    async def test_history_shows_only_the_customers_accounts(
        self, ledger: Ledger, history: History
    ) -> None:
        await ledger.grant("cus_a", 1_000, idempotency_key="g")
        await ledger.grant("cus_b", 1_000, idempotency_key="g")
        hold = await ledger.hold("cus_a", 500)
        await ledger.capture(hold.id, 500)

        entries = await history("cus_a")

        assert {t.account_kind for t in entries} == {"grant", "escrow"}
        assert sum(t.amount for t in entries) == 1_000 - 500  # revenue is not the customer's
        assert len({t.transfer_id for t in entries if t.kind == "hold"}) == 1
        assert await history("cus_nobody") == []
