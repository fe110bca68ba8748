"""`tollhouse credits alerts show|set|remove`: a customer's low-credit alert."""

from __future__ import annotations

import dataclasses
from typing import Any

import typer

from tollhouse.alerts import service as alerts
from tollhouse.cli.common import JsonOption, Services, emit, run
from tollhouse.customers import service as customers
from tollhouse.errors import InvalidInput, NotFound
from tollhouse.ledger import service as ledger
from tollhouse.server.invalidation import customer_message

alerts_app = typer.Typer(
    help="Low-credit alerts: `credits.low` / `credits.depleted` events once per crossing.",
    no_args_is_help=True,
)
COLUMNS = [
    "customer_id",
    "threshold_micros",
    "threshold_percent",
    "effective_threshold_micros",
    "state",
]


@alerts_app.command("show")
def show(customer: str, as_json: bool = JsonOption) -> None:
    """CUSTOMER's alert: its threshold and where its balance stands."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            await customers.get(session, customer)
            view = await alerts.get(session, customer)
        if view is None:
            raise NotFound(f"customer '{customer}' has no credit alert")
        return dataclasses.asdict(view)

    emit(run(job), as_json, columns=COLUMNS)


@alerts_app.command("set")
def set_(
    customer: str,
    below_micros: int | None = typer.Option(None, "--below-micros", min=0, help="Micros."),
    below_percent: int | None = typer.Option(
        None, "--below-percent", min=1, max=100, help="Percent of the latest grant."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Warn when CUSTOMER's balance falls below an amount or a percent of its latest grant."""
    if (below_micros is None) == (below_percent is None):
        raise typer.BadParameter("give exactly one of --below-micros and --below-percent")

    async def job(svc: Services) -> dict[str, Any]:
        view = await _set(svc, customer, below_micros, below_percent)
        if view is None:
            raise InvalidInput("no threshold given")
        return view

    emit(run(job), as_json, columns=COLUMNS)


@alerts_app.command("remove")
def remove(customer: str, as_json: bool = JsonOption) -> None:
    """Remove CUSTOMER's alert."""

    async def job(svc: Services) -> dict[str, Any]:
        await _set(svc, customer, None, None)
        return {"customer_id": customer, "removed": True}

    emit(run(job), as_json, columns=["customer_id", "removed"])


async def _set(
    svc: Services, customer: str, micros: int | None, percent: int | None
) -> dict[str, Any] | None:
    async with svc.db.transaction() as session:
        await customers.get(session, customer)
        balance = await ledger.balance(
            session, customer, currency=svc.catalog.currency, now=svc.clock.now()
        )
        view = await alerts.set_alert(
            session,
            customer,
            threshold_micros=micros,
            threshold_percent=percent,
            available_micros=balance.available_micros,
            clock=svc.clock,
        )
    await svc.notify(customer_message(customer))
    return None if view is None else dataclasses.asdict(view)
