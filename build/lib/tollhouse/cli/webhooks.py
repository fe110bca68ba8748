"""`tollhouse webhooks list|add|remove|enable|disable|deliveries|retry`: the operator's webhook
endpoints and their delivery log. Sending is `serve`'s: a retry made here is sent by a
running server within a second."""

from __future__ import annotations

import dataclasses
from typing import Any

import typer

from tollhouse.cli.common import JsonOption, Services, console, emit, run
from tollhouse.webhooks import DeliveryStatus, DeliveryView, EndpointView
from tollhouse.webhooks import filters as webhook_filters
from tollhouse.webhooks import service as webhooks

webhooks_app = typer.Typer(help="Webhook endpoints and deliveries.", no_args_is_help=True)

ENDPOINT_COLUMNS = ["id", "url", "event_types", "enabled", "disabled_reason", "description"]
DELIVERY_COLUMNS = [
    "id",
    "endpoint_id",
    "event_type",
    "status",
    "attempt_count",
    "last_status_code",
    "last_error",
    "next_attempt_at",
]


def _endpoint_dict(view: EndpointView) -> dict[str, Any]:
    return dataclasses.asdict(view)


def _delivery_dict(view: DeliveryView) -> dict[str, Any]:
    return dataclasses.asdict(view)


@webhooks_app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """Every endpoint, oldest first (secrets are never shown again)."""

    async def job(svc: Services) -> list[dict[str, Any]]:
        async with svc.db.transaction() as session:
            return [_endpoint_dict(view) for view in await webhooks.list_endpoints(session)]

    emit(run(job), as_json, columns=ENDPOINT_COLUMNS)


@webhooks_app.command("add")
def add(
    url: str,
    event_type: list[str] = typer.Option(
        [],
        "--type",
        help="An event type (session.ended), a prefix (session.*) or *; repeat for several. "
        "Default: every event.",
    ),
    description: str = typer.Option("", help="A note for yourself."),
    as_json: bool = JsonOption,
) -> None:
    """Register URL for events created from now on; prints its signing secret, once."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            created = await webhooks.create_endpoint(
                session,
                url=url,
                event_types=event_type or [webhook_filters.ALL],
                description=description,
                clock=svc.clock,
            )
        return {**_endpoint_dict(created.endpoint), "secret": created.secret}

    created = run(job)
    if as_json:
        emit(created, True)
        return
    emit(created, False, columns=ENDPOINT_COLUMNS, title="webhook endpoint added")
    console.print("[bold]signing secret (shown once, store it now):[/bold]")
    typer.echo(created["secret"])


@webhooks_app.command("remove")
def remove(endpoint_id: str, as_json: bool = JsonOption) -> None:
    """Remove an endpoint with its deliveries and their log."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            return _endpoint_dict(await webhooks.delete_endpoint(session, endpoint_id))

    emit(run(job), as_json, columns=["id", "url"], title="webhook endpoint removed")


def _set_enabled(endpoint_id: str, enabled: bool, as_json: bool) -> None:
    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            view = await webhooks.update_endpoint(
                session, endpoint_id, enabled=enabled, clock=svc.clock
            )
        return _endpoint_dict(view)

    emit(run(job), as_json, columns=ENDPOINT_COLUMNS)


@webhooks_app.command("enable")
def enable(endpoint_id: str, as_json: bool = JsonOption) -> None:
    """Enable an endpoint again (also one disabled for failing): its pending deliveries go
    out, and events created from now on are delivered."""
    _set_enabled(endpoint_id, True, as_json)


@webhooks_app.command("disable")
def disable(endpoint_id: str, as_json: bool = JsonOption) -> None:
    """Disable an endpoint: pending deliveries wait, events created meanwhile are not sent."""
    _set_enabled(endpoint_id, False, as_json)


@webhooks_app.command("deliveries")
def deliveries(
    endpoint: str | None = typer.Option(None, help="Only this endpoint's deliveries."),
    event: str | None = typer.Option(None, help="Only this event's deliveries (evt_...)."),
    status: DeliveryStatus | None = typer.Option(None, help="pending, succeeded or failed."),
    before: str | None = typer.Option(None, help="Only deliveries older than this id."),
    limit: int = typer.Option(50, min=1, max=webhooks.MAX_PAGE),
    as_json: bool = JsonOption,
) -> None:
    """The delivery log, newest first; `--json` adds every attempt (time, status or error,
    latency, the start of the answer), `has_more` and `next_cursor` (pass it as `--before`)."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            page = await webhooks.list_deliveries(
                session,
                endpoint_id=endpoint,
                event_id=event,
                status=status,
                before=before,
                limit=limit,
            )
        return {
            "data": [_delivery_dict(view) for view in page.deliveries],
            "has_more": page.has_more,
            "next_cursor": page.next_cursor,
        }

    listed = run(job)
    if as_json:
        emit(listed, True)
        return
    emit(listed["data"], False, columns=DELIVERY_COLUMNS)
    if listed["has_more"]:
        typer.echo(f"more follow: --before {listed['next_cursor']}")


@webhooks_app.command("retry")
def retry(delivery_id: str, as_json: bool = JsonOption) -> None:
    """Make a delivery due now, whatever its status: a running server sends it within a
    second."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            view = await webhooks.retry_delivery(session, delivery_id, clock=svc.clock)
        return _delivery_dict(view)

    emit(run(job), as_json, columns=DELIVERY_COLUMNS, title="delivery due now")
