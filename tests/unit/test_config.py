"""`Settings`: the database URL people paste, and the catalog file in the working directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from tollhouse.config import Settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty working directory and no `TOLLHOUSE_*` variable."""
    for name in list(os.environ):
        if name.startswith("TOLLHOUSE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


class TestDatabaseUrl:
    def test_default_is_a_sqlite_file_in_the_working_directory(self, clean_env: Path) -> None:
        assert settings().database_url == "sqlite+aiosqlite:///./tollhouse.db"

    def test_postgres_url_from_the_environment_gets_asyncpg(
        self, clean_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TOLLHOUSE_DATABASE_URL", "postgres://ada@db.internal/billing")

        assert settings().database_url == "postgresql+asyncpg://ada@db.internal/billing"

    def test_unsupported_url_is_a_validation_error_naming_the_field(
        self, clean_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TOLLHOUSE_DATABASE_URL", "mysql://ada@db/billing")

        with pytest.raises(ValidationError) as caught:
            settings()

        [error] = caught.value.errors()
        assert error["loc"] == ("database_url",)
        assert "unsupported database 'mysql'" in error["msg"]


class TestCatalog:
    def test_without_a_file_or_variable_the_builtin_catalog_is_used(self, clean_env: Path) -> None:
        assert settings().catalog is None

    def test_tollhouse_yaml_in_the_working_directory_is_picked_up(self, clean_env: Path) -> None:
        (clean_env / "tollhouse.yaml").write_text("version: '1'\n")

        assert settings().catalog == Path("tollhouse.yaml")

    def test_the_variable_wins_over_the_file(
        self, clean_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (clean_env / "tollhouse.yaml").write_text("version: '1'\n")
        monkeypatch.setenv("TOLLHOUSE_CATALOG", "/srv/catalog.yaml")

        assert settings().catalog == Path("/srv/catalog.yaml")


def test_a_port_outside_1_to_65535_is_a_validation_error(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLHOUSE_PORT", "70000")

    with pytest.raises(ValidationError) as caught:
        settings()

    assert caught.value.errors()[0]["loc"] == ("port",)
