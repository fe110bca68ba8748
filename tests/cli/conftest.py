"""The CLI fixtures shared by the CLI tests: `cli` (a database file in an empty working
directory, the test catalog) and `migrated` (the same, after `db upgrade`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.catalog import write_catalog
from tests.support.cli import Cli

from tollhouse.config import get_settings


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """A CLI whose only settings are a database file in an empty working directory and the
    test catalog (its free plan includes no credits, so balances are exactly the grants)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TOLLHOUSE_"):
            monkeypatch.delenv(name)
    runner = Cli(tmp_path)
    monkeypatch.setenv("TOLLHOUSE_DATABASE_URL", runner.url)
    (tmp_path / "settings").mkdir()
    catalog = write_catalog(tmp_path / "settings", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("TOLLHOUSE_CATALOG", str(catalog))
    get_settings.cache_clear()
    yield runner
    get_settings.cache_clear()


@pytest.fixture
def migrated(cli: Cli) -> Cli:
    cli.ok("db", "upgrade")
    return cli
