"""The ledger's listeners (the metrics' source): new holds, settlements that moved money
(replays are not told), and every committed transaction with its operations."""

from __future__ import annotations

import pytest

from tollhouse.ledger import HoldNotOpen, HoldView, Ledger

ONE_DOLLAR = 1_000_000


class TestSettlements:
    async def test_captures_and_voids_are_told_once_each(self, ledger: Ledger) -> None:
        settled: list[HoldView] = []
        ledger.watch_settlements(settled.append)
        await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        captured_hold = await ledger.hold("cus_a", 500)
        voided_hold = await ledger.hold("cus_a", 300)

        captured = await ledger.capture(captured_hold.id, 400)
        again = await ledger.capture(captured_hold.id, 400)
        voided = await ledger.void(voided_hold.id)
        void_again = await ledger.void(voided_hold.id)

        assert settled == [captured, voided]
        assert [(v.status, v.captured_amount, v.amount) for v in settled] == [
            ("captured", 400, 500),
            ("voided", 0, 300),
        ]
        assert again.replayed and void_again.replayed
        assert not captured.replayed and not voided.replayed

    async def test_a_refused_capture_is_not_told(self, ledger: Ledger) -> None:
        settled: list[HoldView] = []
        ledger.watch_settlements(settled.append)
        await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        hold = await ledger.hold("cus_a", 500)
        await ledger.void(hold.id)

        with pytest.raises(HoldNotOpen):
            await ledger.capture(hold.id, 100)

        assert [view.status for view in settled] == ["voided"]


class TestCommits:
    async def test_every_operation_is_in_one_told_transaction(self, ledger: Ledger) -> None:
        told: list[tuple[int, float]] = []
        ledger.watch_commits(lambda operations, seconds: told.append((operations, seconds)))
        await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")

        holds = [await ledger.hold("cus_a", 10) for _ in range(3)]
        for hold in holds:
            await ledger.capture(hold.id, 5)

        assert sum(operations for operations, _ in told) == 1 + 3 + 3
        assert all(operations >= 1 and seconds >= 0 for operations, seconds in told)
        assert len(told) == ledger.batches
