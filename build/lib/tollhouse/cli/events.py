"""`tollhouse events list`: the events outbox, ascending by id."""

from __future__ import annotations

from typing import Any

import typer

from tollhouse.cli.common import JsonOption, Services, emit, run
from tollhouse.events import service as events

events_app = typer.Typer(help="Read the events outbox.", no_args_is_help=True)


@events_app.command("list")
def events_list(
    customer: str | None = typer.Option(None, help="Only this customer's events (cus_...)."),
    after: str | None = typer.Option(None, help="Only events after this id (a cursor)."),
    limit: int = typer.Option(100, min=1, max=events.MAX_PAGE),
    event_type: list[str] = typer.Option([], "--type", help="Repeat for several; default all."),
    as_json: bool = JsonOption,
) -> None:
    """Events ascending by id; `--json` adds `has_more` and `next_cursor` (pass it as
    `--after` to read on)."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            page = await events.list_events(
                session, customer_id=customer, after=after, limit=limit, types=event_type or None
            )
        return {
            "data": [
                {
                    "id": e.id,
                    "type": e.type,
                    "customer_id": e.customer_id,
                    "created_at": e.created_at,
                    "data": e.data,
                }
                for e in page.events
            ],
            "has_more": page.has_more,
            "next_cursor": page.next_cursor,
        }

    listed = run(job)
    if as_json:
        emit(listed, True)
        return
    emit(listed["data"], False, columns=["id", "created_at", "type", "customer_id", "data"])
    if listed["has_more"]:
        typer.echo(f"more follow: --after {listed['next_cursor']}")
