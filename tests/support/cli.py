"""`Cli`: the `tollhouse` command driven in-process with Typer's CliRunner on one SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from tollhouse.cli.main import app
from tollhouse.config import get_settings


class Cli:
    """Invoke `tollhouse` in-process on one SQLite file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.db_path = directory / "cli.db"
        self.url = f"sqlite+aiosqlite:///{self.db_path}"
        self.runner = CliRunner()

    def invoke(self, *args: str, input: str | None = None) -> Result:
        """Run `tollhouse *args` (with `input` on stdin)."""
        get_settings.cache_clear()
        return self.runner.invoke(app, list(args), input=input)

    def ok(self, *args: str) -> Result:
        """Invoke and fail the test unless the command exits 0."""
        result = self.invoke(*args)
        assert result.exit_code == 0, (args, result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        """Invoke with `--json` and parse the one JSON document on stdout."""
        return json.loads(self.ok(*args, "--json").stdout)

    def customer(self, name: str = "Ada") -> str:
        return str(self.json("customers", "create", "--name", name)["id"])

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Read the database file directly, behind the CLI's back."""
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(sql, params).fetchall()

    def stored_bytes(self) -> bytes:
        """Every byte SQLite keeps for the database: the file and its WAL, if any."""
        paths = [self.db_path, self.db_path.with_name(self.db_path.name + "-wal")]
        return b"".join(path.read_bytes() for path in paths if path.exists())
