"""Shared CLI plumbing: run a coroutine with the services, print JSON or a table, fail cleanly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from tollhouse.catalog import Catalog, load_catalog
from tollhouse.clock import SYSTEM_CLOCK, Clock
from tollhouse.config import Settings, get_settings
from tollhouse.errors import TollhouseError
from tollhouse.ledger import Ledger
from tollhouse.server.invalidation import publish
from tollhouse.storage import Database

T = TypeVar("T")

console = Console()
errors = Console(stderr=True)

JsonOption = typer.Option(False, "--json", help="Print one JSON document for scripts.")


@dataclass
class Services:
    """What an admin verb may use: settings, catalog, database, ledger writer, clock."""

    settings: Settings
    catalog: Catalog
    db: Database
    ledger: Ledger
    clock: Clock

    @property
    def key_secret(self) -> bytes:
        return self.settings.key_secret.get_secret_value().encode()

    async def notify(self, message: str) -> None:
        """Tell running servers to drop a cached key or customer (`server.invalidation`);
        without Redis there is nothing to tell: a server re-reads within its cache TTL."""
        if self.settings.redis_url:
            await publish(self.settings.redis_url, message)


def settings_or_exit() -> Settings:
    """The process's settings; invalid ones (a malformed `TOLLHOUSE_DATABASE_URL`, a port
    that is not a number) print one line each on stderr, then exit 2."""
    try:
        return get_settings()
    except ValidationError as error:
        for item in error.errors(include_url=False):
            name = "TOLLHOUSE_" + "_".join(str(part) for part in item["loc"]).upper()
            message = item["msg"].removeprefix("Value error, ")
            errors.print(
                f"[red]error[/red]: {name}: {escape(message)}", highlight=False, soft_wrap=True
            )
        raise typer.Exit(2) from None


@asynccontextmanager
async def services() -> AsyncIterator[Services]:
    settings = settings_or_exit()
    catalog = load_catalog(settings.catalog)
    db = Database(settings.database_url)
    ledger = Ledger(db, clock=SYSTEM_CLOCK)
    await ledger.start()
    try:
        yield Services(settings, catalog, db, ledger, SYSTEM_CLOCK)
    finally:
        await ledger.stop()
        await db.dispose()


def run(job: Callable[[Services], Awaitable[T]]) -> T:
    """Run `job` with fresh services; a TollhouseError exits 1 with its message on stderr."""

    async def main() -> T:
        async with services() as svc:
            return await job(svc)

    try:
        return asyncio.run(main())
    except TollhouseError as error:
        print_error(f"error ({error.code})", error)
        raise typer.Exit(1) from None
    except DBAPIError as error:
        errors.print(
            f"[red]database error[/red]: {escape(str(error.orig))}\n"
            "  is TOLLHOUSE_DATABASE_URL right, and migrated (`tollhouse db upgrade`)?",
            highlight=False,
        )
        raise typer.Exit(1) from None


def print_error(headline: str, error: TollhouseError) -> None:
    """Print `headline: detail` on stderr, then each listed problem the detail does not show.

    User input (ids, amounts, file names) reaches the detail, so it is printed as plain
    text, never as Rich markup.
    """
    errors.print(f"[red]{escape(headline)}[/red]: {escape(error.detail)}", highlight=False)
    for item in error.extra.get("errors", []) or []:
        line = f"{item.get('loc')}: {item.get('msg')}"
        if line not in error.detail:
            errors.print(f"  {escape(line)}", highlight=False)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    return value


def emit(
    data: Any, as_json: bool, *, columns: Sequence[str] | None = None, title: str = ""
) -> None:
    """Print `data` (a dict or a list of dicts) as JSON or as a table of `columns`."""
    if as_json:
        typer.echo(json.dumps(data, default=_plain, indent=2))
        return
    rows = data if isinstance(data, list) else [data]
    columns = columns or (list(rows[0].keys()) if rows else [])
    table = Table(title=title or None)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(_plain(row.get(c))) for c in columns))
    console.print(table)
