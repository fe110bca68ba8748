"""Bad input is refused with 422 before anything is queued or written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from tollhouse.errors import InvalidInput
from tollhouse.ledger import Ledger

from .conftest import Counts

Call = Callable[[Ledger], Awaitable[Any]]
PAST = datetime(2020, 1, 1).astimezone()

BAD_CALLS: dict[str, Call] = {
    "grant zero": lambda l: l.grant("cus_a", 0, idempotency_key="k"),
    "grant negative": lambda l: l.grant("cus_a", -5, idempotency_key="k"),
    "grant float": lambda l: l.grant("cus_a", 1.5, idempotency_key="k"),  # type: ignore[arg-type]
    "grant bool": lambda l: l.grant("cus_a", True, idempotency_key="k"),
    "grant str": lambda l: l.grant("cus_a", "100", idempotency_key="k"),  # type: ignore[arg-type]
    "grant huge": lambda l: l.grant("cus_a", 10**30, idempotency_key="k"),
    "grant currency upper": lambda l: l.grant("cus_a", 1, idempotency_key="k", currency="USD"),
    "grant currency long": lambda l: l.grant("cus_a", 1, idempotency_key="k", currency="usdt"),
    "grant empty key": lambda l: l.grant("cus_a", 1, idempotency_key=""),
    "grant past expiry": lambda l: l.grant("cus_a", 1, idempotency_key="k", expires_at=PAST),
    "grant naive expiry": lambda l: l.grant(
        "cus_a", 1, idempotency_key="k", expires_at=datetime(2030, 1, 1)
    ),
    "grant bad source": lambda l: l.grant("cus_a", 1, idempotency_key="k", source="gift"),
    "grant empty customer": lambda l: l.grant("", 1, idempotency_key="k"),
    "hold zero": lambda l: l.hold("cus_a", 0),
    "hold negative": lambda l: l.hold("cus_a", -1),
    "hold bad currency": lambda l: l.hold("cus_a", 1, currency="dollars"),
    "hold bad metadata": lambda l: l.hold("cus_a", 1, metadata=[1]),  # type: ignore[arg-type]
    "hold unserialisable metadata": lambda l: l.hold("cus_a", 1, metadata={"at": object()}),
    "hold huge metadata": lambda l: l.hold("cus_a", 1, metadata={"x": "y" * 5000}),
    "hold NaN metadata": lambda l: l.hold("cus_a", 1, metadata={"x": [None, float("nan")]}),
    "hold infinite metadata": lambda l: l.hold("cus_a", 1, metadata={"x": {"y": float("inf")}}),
    "hold metadata int key": lambda l: l.hold("cus_a", 1, metadata={"x": {1: "y"}}),
    "hold metadata huge int": lambda l: l.hold("cus_a", 1, metadata={"x": 2**70}),
    "capture negative": lambda l: l.capture("hold_x", -1),
    "capture float": lambda l: l.capture("hold_x", 0.5),  # type: ignore[arg-type]
    "overdraft negative": lambda l: l.set_overdraft_limit("cus_a", -1),
    "overdraft bad currency": lambda l: l.set_overdraft_limit("cus_a", 1, currency="x"),
    "sweep naive": lambda l: l.sweep(datetime(2030, 1, 1)),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
async def test_bad_input_raises_422_and_stores_nothing(
    sqlite_ledger: Ledger, row_counts: Counts, call: Call
) -> None:
    with pytest.raises(InvalidInput) as raised:
        await call(sqlite_ledger)

    assert raised.value.status == 422
    assert raised.value.extra["errors"][0]["loc"]
    assert await row_counts() == (0, 0)
    assert sqlite_ledger.ops == 0


async def test_bad_input_on_postgres_stores_nothing(ledger: Ledger, row_counts: Counts) -> None:
    with pytest.raises(InvalidInput):
        await ledger.hold("cus_a", -1)
    with pytest.raises(InvalidInput):
        await ledger.grant("cus_a", 5, idempotency_key="k", expires_at=PAST - timedelta(1))

    assert await row_counts() == (0, 0)
