"""`storage.engine.create_engine`: the SQLite it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollhouse.storage import engine as engine_module


def test_a_sqlite_older_than_the_writers_need_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module.sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(engine_module.sqlite3, "sqlite_version", "3.31.1")

    with pytest.raises(RuntimeError, match=r"SQLite 3\.31\.1 is too old: tollhouse needs 3\.33\.0"):
        engine_module.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")


async def test_the_running_sqlite_is_accepted(tmp_path: Path) -> None:
    engine = engine_module.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    await engine.dispose()


class TestAsyncDatabaseUrl:
    """`TOLLHOUSE_DATABASE_URL` as people paste it; tollhouse picks the async driver."""

    @pytest.mark.parametrize(
        ("pasted", "used"),
        [
            ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
            ("sqlite:////srv/th/x.db", "sqlite+aiosqlite:////srv/th/x.db"),
            ("sqlite+aiosqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
            ("postgresql://user@host/db", "postgresql+asyncpg://user@host/db"),
            ("postgres://user:pw@host:5433/db", "postgresql+asyncpg://user:pw@host:5433/db"),
            ("postgresql+psycopg2://user@host/db", "postgresql+asyncpg://user@host/db"),
            ("postgresql+asyncpg://user@host/db", "postgresql+asyncpg://user@host/db"),
            ("postgresql://u@h/db?sslmode=require", "postgresql+asyncpg://u@h/db?ssl=require"),
        ],
    )
    def test_pasted_url_gets_the_async_driver(self, pasted: str, used: str) -> None:
        assert engine_module.async_database_url(pasted) == used

    @pytest.mark.parametrize(
        ("bad", "reason"),
        [
            ("not a url", "not a database URL"),
            ("postgresql://host:port/db", "not a database URL"),
            ("mysql://user:secret@host/db", "unsupported database 'mysql'"),
            ("sqlite://", "names no SQLite file"),
        ],
    )
    def test_malformed_url_is_refused_without_showing_its_password(
        self, bad: str, reason: str
    ) -> None:
        with pytest.raises(ValueError, match=reason) as caught:
            engine_module.async_database_url(bad)

        assert "secret" not in str(caught.value)

    async def test_a_pasted_sqlite_url_opens_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "pasted.db"
        engine = engine_module.create_engine(engine_module.async_database_url(f"sqlite:///{path}"))
        async with engine.connect() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        await engine.dispose()

        assert path.exists()
