"""Shared CLI plumbing: run a coroutine with the services, print JSON or a table, fail cleanly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import DBAPIError

from tollhouse.catalog import Catalog, load_catalog
from tollhouse.clock import SYSTEM_CLOCK, Clock
from tollhouse.config import Settings, get_settings
from tollhouse.errors import TollhouseError
from tollhouse.ledger import Ledger
from tollhouse.server.invalidation import announce
from tollhouse.storage import Database

T = TypeVar("T")

console = Console()
errors = Console(stderr=True)

_UNBOUNDED_WIDTH = 1_000_000
"""Width to measure a table's natural width in (Rich measures within a maximum)."""

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
        """Tell running servers to drop a cached key, customer or sessions (`server.invalidation`):
        they do within 2 s (through Redis at once when it is configured)."""
        await announce(self.db, message, redis_url=self.settings.redis_url, clock=self.clock)


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
    """`value` as the API's JSON writes it (pydantic's rules: a UTC datetime is
    `2026-03-15T12:00:00Z`, a Decimal a string); sets sorted."""
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return to_jsonable_python(value)


def _cell(value: Any) -> str:
    """A table cell: strings as they are, None empty, anything else as its JSON."""
    if value is None:
        return ""
    plain = _plain(value)
    return plain if isinstance(plain, str) else json.dumps(plain, default=_plain)


def emit(
    data: Any, as_json: bool, *, columns: Sequence[str] | None = None, title: str = ""
) -> None:
    """Print `data` (a dict or a list of dicts) as one JSON document, or as a table of
    `columns`.

    No cell is ever cut or wrapped: a table wider than the terminal (or than `COLUMNS`, or
    80 when piped) prints instead as one `column  value` line per field, records apart.
    """
    if as_json:
        typer.echo(json.dumps(data, default=_plain, indent=2))
        return
    rows = data if isinstance(data, list) else [data]
    columns = columns or (list(rows[0].keys()) if rows else [])
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    table = Table(title=title or None)
    for column in columns:
        table.add_column(column, no_wrap=True)
    for line in cells:
        table.add_row(*(Text(cell) for cell in line))
    unbounded = console.options.update_width(_UNBOUNDED_WIDTH)
    if Measurement.get(console, unbounded, table).maximum <= console.width:
        console.print(table)
        return
    if title:
        typer.echo(title)
    label_width = max(len(column) for column in columns)
    for number, line in enumerate(cells):
        if number:
            typer.echo("")
        for column, cell in zip(columns, line, strict=True):
            typer.echo(f"{column.ljust(label_width)}  {cell}".rstrip())


def show_secret(secret: str) -> None:
    """Print a key that is shown once: a headline, then the key alone on its own line (no
    table, no wrapping: a pipe or a narrow terminal gets every character)."""
    console.print("[bold]API key (shown once, store it now):[/bold]")
    typer.echo(secret)
