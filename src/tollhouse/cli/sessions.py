"""`tollhouse sessions start|list|show|stop` and `tollhouse sessions packs buy|list`."""

from __future__ import annotations

import dataclasses
from typing import Any

import typer

from tollhouse.catalog import service as catalogs
from tollhouse.cli.common import JsonOption, Services, emit, run
from tollhouse.ids import new_id
from tollhouse.server.invalidation import sessions_message
from tollhouse.sessions import SessionStatus, SessionView
from tollhouse.sessions import service as sessions

sessions_app = typer.Typer(help="Customers' flat sessions.", no_args_is_help=True)
packs_app = typer.Typer(help="Prepaid session packs.", no_args_is_help=True)
sessions_app.add_typer(packs_app, name="packs")

COLUMNS = ["id", "customer_id", "product", "status", "expires_at", "tokens_left", "fee_micros"]
KeyOption = typer.Option(None, "--idempotency-key", help="Default: a new random key.")


def _session_dict(view: SessionView) -> dict[str, Any]:
    return dataclasses.asdict(view)


@sessions_app.command("start")
def start(
    customer: str,
    product: str,
    idempotency_key: str | None = KeyOption,
    auto_renew: bool = typer.Option(
        False, "--auto-renew", help="Start the next session when a cap ends this one."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Start a flat session of PRODUCT for CUSTOMER: paid from a pack, else the wallet."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            await catalogs.require_in_force(session, svc.catalog, currency=True)
        started = await sessions.start(
            svc.db,
            svc.ledger,
            catalog=svc.catalog,
            clock=svc.clock,
            customer_id=customer,
            product=product,
            idempotency_key=idempotency_key or new_id("cli"),
            auto_renew=auto_renew,
        )
        await svc.notify(sessions_message(customer))
        return {**_session_dict(started.session), "replayed": started.replayed}

    emit(run(job), as_json, columns=[*COLUMNS, "paid_with", "auto_renew"])


@sessions_app.command("list")
def list_(
    customer: str | None = typer.Option(None, help="Only this customer's sessions."),
    status: SessionStatus | None = typer.Option(None, help="active or ended."),
    limit: int = typer.Option(50, min=1, max=sessions.MAX_PAGE),
    as_json: bool = JsonOption,
) -> None:
    """Sessions, newest first."""

    async def job(svc: Services) -> list[dict[str, Any]]:
        async with svc.db.transaction() as session:
            views = await sessions.list_sessions(
                session, clock=svc.clock, customer_id=customer, status=status, limit=limit
            )
        return [_session_dict(view) for view in views]

    emit(run(job), as_json, columns=COLUMNS)


@sessions_app.command("show")
def show(session_id: str, as_json: bool = JsonOption) -> None:
    """One session: usage, cost, seconds and tokens left."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            return _session_dict(await sessions.get(session, session_id, clock=svc.clock))

    emit(run(job), as_json, columns=[*COLUMNS, "seconds_left", "end_reason"])


@sessions_app.command("stop")
def stop(session_id: str, as_json: bool = JsonOption) -> None:
    """End a session now (reason `terminated`; the fee is not refunded)."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            view = await sessions.terminate(session, session_id, clock=svc.clock)
        await svc.notify(sessions_message(view.customer_id))
        return _session_dict(view)

    emit(run(job), as_json, columns=[*COLUMNS, "end_reason"])


@packs_app.command("buy")
def buy(
    customer: str,
    product: str,
    sessions_count: int = typer.Argument(..., metavar="SESSIONS", help="The pack's size."),
    idempotency_key: str | None = KeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Buy CUSTOMER a pack of SESSIONS sessions of PRODUCT, paid from the wallet."""

    async def job(svc: Services) -> dict[str, Any]:
        bought = await sessions.buy_pack(
            svc.db,
            svc.ledger,
            catalog=svc.catalog,
            clock=svc.clock,
            customer_id=customer,
            product=product,
            sessions=sessions_count,
            idempotency_key=idempotency_key or new_id("cli"),
        )
        return {**dataclasses.asdict(bought.pack), "replayed": bought.replayed}

    emit(
        run(job),
        as_json,
        columns=["id", "customer_id", "product", "sessions", "sessions_left", "price_micros"],
    )


@packs_app.command("list")
def quota(customer: str, as_json: bool = JsonOption) -> None:
    """Prepaid sessions CUSTOMER has left, per product."""

    async def job(svc: Services) -> list[dict[str, Any]]:
        async with svc.db.transaction() as session:
            left = await sessions.quota(session, customer, catalog=svc.catalog)
        return [dataclasses.asdict(q) for q in left]

    emit(run(job), as_json, columns=["product", "sessions_left"])
