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
