"""The catalog in force on PostgreSQL: recorded, read back (JSON terms), checked."""

from __future__ import annotations

import pytest
from tests.unit.catalog.test_catalog_in_force import CATALOG_A, CATALOG_B, catalog, record, require

from tollhouse.catalog import NotInCatalogInForce
from tollhouse.catalog import service as catalogs
from tollhouse.clock import FrozenClock
from tollhouse.storage import Database


async def test_the_last_recorded_catalog_is_in_force_and_checked(
    postgres_db: Database, clock: FrozenClock
) -> None:
    served = catalog(CATALOG_A, "/srv/a/tollhouse.yaml")
    other = catalog(CATALOG_B, "/home/ada/tollhouse.yaml")
    await record(postgres_db, other, clock)
    await record(postgres_db, served, clock)

    async with postgres_db.transaction() as session:
        row = await catalogs.in_force(session)
    assert row is not None and row.describe() == served.describe()
    assert row.terms["plans"]["pro"]["price_micros"] == 29_000_000
    await require(postgres_db, other, plans=["free"], models=["m1"], currency=True)
    with pytest.raises(NotInCatalogInForce, match="plan 'gold' is not in the catalog in force"):
        await require(postgres_db, other, plans=["gold"])
