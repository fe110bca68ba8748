"""Keys fixtures: an HMAC secret, a customer to own keys, a statement recorder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.statements import recorded_statements

from tollhouse.clock import FrozenClock
from tollhouse.customers import Customer
from tollhouse.customers import service as customers
from tollhouse.storage import Database

SECRET = b"unit-test-key-secret"


@pytest.fixture
def secret() -> bytes:
    return SECRET


@pytest.fixture
async def customer(sqlite_db: Database, clock: FrozenClock) -> Customer:
    async with sqlite_db.transaction() as session:
        return await customers.create(session, name="Acme", plan="pro", clock=clock)


@pytest.fixture
def queries(sqlite_db: Database) -> Iterator[list[str]]:
    """Every SQL statement sent to `sqlite_db` while the test runs, in order."""
    with recorded_statements(sqlite_db) as statements:
        yield statements
