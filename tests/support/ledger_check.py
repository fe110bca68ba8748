"""The checks every load and fault test runs on its database afterwards.

```python
from tests.support.ledger_check import assert_consistent, assert_counted_once

await assert_consistent(database_url)  # the ledger and usage invariants, as `tollhouse doctor`
await assert_counted_once(database_url, customer_id, acknowledged_ids)
```

`assert_consistent` runs the product's own checkers (`ledger.service.check_invariants`:
postings sum to zero, balances equal their entries, no hold resolved twice, no wallet below
zero beyond its overdraft; `metering.service.check_invariants`: no usage event id stored
twice) and fails with every problem found. `assert_counted_once` checks the usage a client
was told was accepted: the ids acknowledged (2xx) are exactly the distinct ids stored for
that customer, and each is stored once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from sqlalchemy import select

from tollhouse.ledger import service as ledger_service
from tollhouse.metering import UsageEvent
from tollhouse.metering import service as metering_service
from tollhouse.storage import Database


async def problems(database_url: str) -> list[str]:
    """Every broken ledger or usage invariant of the database at `database_url` (one line
    each); `[]` when consistent."""
    db = Database(database_url)
    try:
        async with db.sessions() as session:
            return await ledger_service.check_invariants(
                session
            ) + await metering_service.check_invariants(session)
    finally:
        await db.dispose()


async def assert_consistent(database_url: str) -> None:
    """Fail, listing every problem, unless the ledger and usage invariants all hold."""
    found = await problems(database_url)
    assert found == [], "ledger inconsistent:\n" + "\n".join(found)


async def stored_event_ids(
    database_url: str, customer_id: str, *, meter: str | None = None
) -> Counter[str]:
    """How many rows each usage event id of `customer_id` (of `meter`, if given) has."""
    db = Database(database_url)
    try:
        async with db.sessions() as session:
            query = select(UsageEvent.event_id).where(UsageEvent.customer_id == customer_id)
            if meter is not None:
                query = query.where(UsageEvent.meter == meter)
            return Counter((await session.scalars(query)).all())
    finally:
        await db.dispose()


async def assert_counted_once(
    database_url: str,
    customer_id: str,
    acknowledged: Collection[str],
    *,
    meter: str | None = None,
) -> None:
    """Every acknowledged usage event id of `customer_id` is stored exactly once, and no
    other id is stored: the set of acknowledged ids equals the set of stored ids, and the
    number of rows equals the number of distinct ids. `meter` narrows both to one meter."""
    stored = await stored_event_ids(database_url, customer_id, meter=meter)
    expected = set(acknowledged)
    twice = {event_id: n for event_id, n in stored.items() if n != 1}
    assert twice == {}, f"usage event ids stored more than once: {sorted(twice.items())[:20]}"
    missing = expected - stored.keys()
    extra = stored.keys() - expected
    assert not missing, f"{len(missing)} acknowledged ids not stored: {sorted(missing)[:20]}"
    assert not extra, f"{len(extra)} stored ids never acknowledged: {sorted(extra)[:20]}"
    assert sum(stored.values()) == len(expected)
