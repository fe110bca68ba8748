"""`tollhouse doctor`: audit the database's ledger and usage events, read-only.

Runs `ledger.service.check_invariants` (postings sum to zero, every balance equals its
entries, no hold resolved twice, no wallet below zero beyond its overdraft) and
`metering.service.check_invariants` (no usage event id stored twice) in one read
transaction. Full scans: run it off-peak on a large database.
"""

from __future__ import annotations

import asyncio
import json

import typer

from tollhouse.cli.common import JsonOption, settings_or_exit
from tollhouse.cli.serve import on_database
from tollhouse.ledger import service as ledger_service
from tollhouse.metering import service as metering_service
from tollhouse.storage import Database


async def find_problems(url: str) -> list[str]:
    """Every broken ledger or usage invariant of the database at `url`, one line each."""
    db = Database(url)
    try:
        async with db.sessions() as session:
            found = await ledger_service.check_invariants(session)
            return found + await metering_service.check_invariants(session)
    finally:
        await db.dispose()


def doctor(as_json: bool = JsonOption) -> None:
    """Check the ledger and usage events of TOLLHOUSE_DATABASE_URL: exit 0 and "ledger
    consistent", or exit 1 and one line per problem (each check lists at most 100). A
    database that cannot be reached or used is one line on stderr and exit 2."""
    url = settings_or_exit().database_url
    problems = on_database(url, lambda: asyncio.run(find_problems(url)))
    if as_json:
        typer.echo(json.dumps({"consistent": not problems, "problems": problems}, indent=2))
    elif problems:
        for problem in problems:
            typer.echo(problem)
    else:
        typer.echo("ledger consistent")
    if problems:
        raise typer.Exit(1)
