"""Migrations and first start, on a SQLite file and on a fresh PostgreSQL database.

- Schema drift: after `upgrade`, Alembic's autogenerate comparison between the database and
  the models' `Base.metadata` finds nothing, so the migrations create exactly what the code
  declares (and autogenerate would write an empty migration).
- `upgrade` is idempotent: a second run changes neither the schema nor the data.
- `bootstrap` (what `tollhouse serve` runs first) creates exactly one operator key, installs
  `TOLLHOUSE_BOOTSTRAP_KEY` when given, and refuses a malformed one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import SecretStr
from sqlalchemy import Column, Integer, MetaData, inspect, text
from sqlalchemy.engine import Connection

import tollhouse
from tollhouse.clock import FrozenClock
from tollhouse.config import Settings
from tollhouse.customers import service as customers
from tollhouse.keys import InvalidKey, KeyAuthenticator, MalformedKey, generate_key, list_keys
from tollhouse.keys import service as keys_service
from tollhouse.server import bootstrap as bootstrap_module
from tollhouse.server.bootstrap import bootstrap
from tollhouse.storage import Database
from tollhouse.storage.base import Base
from tollhouse.storage.migrate import MODEL_MODULES, alembic_config, load_models, upgrade_async

load_models()


def schema_diff(connection: Connection, metadata: MetaData = Base.metadata) -> list[Any]:
    """Alembic's autogenerate comparison of the live schema against `metadata`."""
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


def schema_snapshot(connection: Connection) -> dict[str, Any]:
    """Everything the inspector reports about every table, as plain comparable data."""
    inspector = inspect(connection)
    snapshot: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        snapshot[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table),
            "fks": sorted(plain(fk) for fk in inspector.get_foreign_keys(table)),
            "indexes": sorted(plain(ix) for ix in inspector.get_indexes(table)),
            "uniques": sorted(plain(uq) for uq in inspector.get_unique_constraints(table)),
        }
    return snapshot


def plain(item: Any) -> str:
    """A stable text form of an inspector record (SQL expressions such as partial-index
    predicates as their SQL, not their object identity)."""
    return json.dumps(item, sort_keys=True, default=str)


def versions(connection: Connection) -> set[str]:
    return {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}


class TestSchemaDrift:
    async def test_upgraded_database_matches_the_models(self, db: Database) -> None:
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(schema_diff)

        assert diff == []

    async def test_every_model_table_exists_after_upgrade(self, db: Database) -> None:
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))

        assert set(Base.metadata.tables) <= tables

    async def test_comparison_reports_a_column_the_migrations_lack(self, db: Database) -> None:
        """The drift check can fail: a model column no migration creates is reported."""
        extended = MetaData(naming_convention=Base.metadata.naming_convention)
        for table in Base.metadata.tables.values():
            table.to_metadata(extended)
        extended.tables["customers"].append_column(Column("loyalty_points", Integer))

        async with db.engine.connect() as conn:
            diff = await conn.run_sync(schema_diff, extended)

        assert [(d[0], d[2], d[3].name) for d in diff] == [
            ("add_column", "customers", "loyalty_points")
        ]

    def test_every_models_module_is_known_to_the_migrations(self) -> None:
        """A new domain's `models.py` left out of MODEL_MODULES would escape the drift check."""
        package_root = Path(tollhouse.__file__).parent
        found = {
            "tollhouse." + ".".join(path.relative_to(package_root).with_suffix("").parts)
            for path in package_root.rglob("models.py")
        }

        assert found == set(MODEL_MODULES)


class TestUpgrade:
    async def test_upgrade_applies_every_revision(self, db: Database) -> None:
        script = ScriptDirectory.from_config(alembic_config(db.url))

        async with db.engine.connect() as conn:
            current = await conn.run_sync(versions)

        applied = {r.revision for r in script.iterate_revisions(tuple(current), "base")}
        assert applied == {r.revision for r in script.walk_revisions()}

    async def test_second_upgrade_changes_neither_schema_nor_data(self, db: Database) -> None:
        async with db.transaction() as session:
            customer = await customers.create(session, name="Ada", plan="free", clock=FrozenClock())
        async with db.engine.connect() as conn:
            schema_before = await conn.run_sync(schema_snapshot)
            versions_before = await conn.run_sync(versions)

        await upgrade_async(db.url)

        async with db.engine.connect() as conn:
            assert await conn.run_sync(schema_snapshot) == schema_before
            assert await conn.run_sync(versions) == versions_before
        async with db.transaction() as session:
            assert (await customers.get(session, customer.id)).name == "Ada"

    async def test_concurrent_upgrades_in_one_process_both_succeed(self, tmp_path: Path) -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'twice.db'}"
        await upgrade_async(url)

        results = await asyncio.gather(
            upgrade_async(url), upgrade_async(url), return_exceptions=True
        )

        for result in results:
            if isinstance(result, BaseException):
                raise result


def settings_for(url: str, bootstrap_key: str | None = None) -> Settings:
    return Settings(
        database_url=url,
        bootstrap_key=SecretStr(bootstrap_key) if bootstrap_key else None,
        key_secret=SecretStr(""),
        _env_file=None,  # type: ignore[call-arg]
    )


async def operator_key_ids(db: Database) -> list[str]:
    async with db.transaction() as session:
        return [key.id for key in await list_keys(session, customer_id=None)]


async def is_operator(db: Database, raw_key: str) -> bool:
    """Whether `raw_key` authenticates (fresh cache) as an operator with every scope."""
    try:
        authenticator = KeyAuthenticator(db, secret=b"", clock=FrozenClock())
        principal = await authenticator.authenticate(raw_key)
    except InvalidKey:
        return False
    return principal.customer_id is None and {"read", "write", "admin"} <= set(principal.scopes)


@pytest.fixture
async def fresh_sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    """A SQLite file no migration has touched: bootstrap must create the schema itself."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    yield db
    await db.dispose()


class TestBootstrap:
    async def test_first_start_migrates_and_creates_one_operator_key(
        self, fresh_sqlite: Database
    ) -> None:
        secret = await bootstrap(settings_for(fresh_sqlite.url))

        assert secret is not None and secret.startswith("th_live_")
        assert len(await operator_key_ids(fresh_sqlite)) == 1
        assert await is_operator(fresh_sqlite, secret)

    async def test_second_start_returns_none_and_adds_no_key(self, db: Database) -> None:
        first = await bootstrap(settings_for(db.url))
        ids = await operator_key_ids(db)

        second = await bootstrap(settings_for(db.url))

        assert first is not None
        assert second is None
        assert await operator_key_ids(db) == ids
        assert len(ids) == 1

    async def test_bootstrap_key_is_installed_as_the_operator_key(self, db: Database) -> None:
        wanted = generate_key()

        installed = await bootstrap(settings_for(db.url, wanted))

        assert installed == wanted
        assert len(await operator_key_ids(db)) == 1
        assert await is_operator(db, wanted)

    async def test_bootstrap_key_is_ignored_once_an_operator_key_exists(self, db: Database) -> None:
        await bootstrap(settings_for(db.url))
        late = generate_key()

        assert await bootstrap(settings_for(db.url, late)) is None

        assert not await is_operator(db, late)
        assert len(await operator_key_ids(db)) == 1

    @pytest.mark.parametrize(
        "malformed",
        ["th_live_short", "sk-not-a-tollhouse-key", generate_key()[:-1] + "!"],
        ids=["too-short", "foreign", "bad-checksum"],
    )
    async def test_malformed_bootstrap_key_raises_and_installs_nothing(
        self, db: Database, malformed: str
    ) -> None:
        with pytest.raises(MalformedKey):
            await bootstrap(settings_for(db.url, malformed))

        assert await operator_key_ids(db) == []

    async def test_typo_in_bootstrap_key_is_caught_by_its_checksum(self, db: Database) -> None:
        good = generate_key()
        typo = good[:-8] + ("A" if good[-8] != "A" else "B") + good[-7:]

        with pytest.raises(MalformedKey):
            await bootstrap(settings_for(db.url, typo))

        assert await operator_key_ids(db) == []

    async def test_processes_starting_together_create_one_operator_key(
        self, postgres_db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Four first starts interleave as four processes would: each checks, then inserts."""
        starts = 4
        secrets = await race_bootstraps(postgres_db, monkeypatch, starts, bootstrap_key=None)

        assert sum(secret is not None for secret in secrets) == 1
        assert len(await operator_key_ids(postgres_db)) == 1

    async def test_processes_starting_together_with_a_bootstrap_key_all_start(
        self, postgres_db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        wanted = generate_key()

        secrets = await race_bootstraps(postgres_db, monkeypatch, 4, bootstrap_key=wanted)

        assert sorted(secrets, key=str) == sorted([wanted, None, None, None], key=str)
        assert len(await operator_key_ids(postgres_db)) == 1


async def race_bootstraps(
    db: Database, monkeypatch: pytest.MonkeyPatch, starts: int, *, bootstrap_key: str | None
) -> list[str | None]:
    """Run `starts` bootstraps at once, each pausing after its "is there an operator key?"
    check until all have checked (or one second passed, so a locking bootstrap cannot
    deadlock here). The database is already migrated, so the migration step is skipped:
    running the migrations is not part of the race."""
    checked = 0
    all_checked = asyncio.Event()
    original = keys_service.has_operator_key

    async def has_operator_key(*args: Any, **kwargs: Any) -> bool:
        nonlocal checked
        answer = await original(*args, **kwargs)
        checked += 1
        if checked == starts:
            all_checked.set()
        try:
            await asyncio.wait_for(all_checked.wait(), 1.0)
        except TimeoutError:
            pass
        return answer

    async def migrated(url: str, revision: str = "heads") -> None:
        return None

    monkeypatch.setattr(keys_service, "has_operator_key", has_operator_key)
    monkeypatch.setattr(bootstrap_module, "upgrade_async", migrated)
    settings = settings_for(db.url, bootstrap_key)
    results = await asyncio.gather(
        *(bootstrap(settings) for _ in range(starts)), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]
