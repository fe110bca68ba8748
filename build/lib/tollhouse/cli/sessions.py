"""`tollhouse sessions start|list|show|stop|estimate|reap` and `tollhouse sessions packs
buy|list`; `show --watch` is a live view of a running session's cost (`cli.watch`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import typer

from tollhouse.catalog import ResourceTier
from tollhouse.catalog import service as catalogs
from tollhouse.cli.common import JsonOption, Services, emit, run
from tollhouse.cli.watch import parse_duration, watch
from tollhouse.errors import InvalidInput
from tollhouse.ids import new_id
from tollhouse.server.invalidation import sessions_message
from tollhouse.sessions import SessionKind, SessionStatus, SessionView
from tollhouse.sessions import service as sessions

sessions_app = typer.Typer(help="Customers' flat and metered sessions.", no_args_is_help=True)
packs_app = typer.Typer(help="Prepaid session packs.", no_args_is_help=True)
sessions_app.add_typer(packs_app, name="packs")

COLUMNS = ["id", "customer_id", "kind", "product", "status", "expires_at", "cost_micros"]
METERED_COLUMNS = ["resource_tier", "rate_micros_per_hour", "paid_until", "billed_micros"]
KeyOption = typer.Option(None, "--idempotency-key", help="Default: a new random key.")


def _session_dict(view: SessionView) -> dict[str, Any]:
    return dataclasses.asdict(view)


@sessions_app.command("start")
def start(
    customer: str,
    product: str | None = typer.Argument(None, help="A session product: a flat session."),
    tier: ResourceTier | None = typer.Option(
        None, "--tier", help="A resource tier of the plan: a metered session."
    ),
    idempotency_key: str | None = KeyOption,
    auto_renew: bool = typer.Option(
        False, "--auto-renew", help="Start the next session when a cap ends this one."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Start a session for CUSTOMER: a flat one of PRODUCT (paid from a pack, else the
    wallet), or a metered one with --tier (billed by the second; the minimum run is held)."""

    async def job(svc: Services) -> dict[str, Any]:
        if (product is None) == (tier is None):
            msg = "name exactly one of PRODUCT (flat session) and --tier (metered session)"
            raise InvalidInput(msg)
        async with svc.db.transaction() as session:
            await catalogs.require_in_force(session, svc.catalog, currency=True)
        key = idempotency_key or new_id("cli")
        if tier is not None:
            started = await sessions.start_metered(
                svc.db, svc.ledger, catalog=svc.catalog, clock=svc.clock,
                customer_id=customer, resource_tier=tier, idempotency_key=key,
            )  # fmt: skip
        else:
            assert product is not None
            started = await sessions.start(
                svc.db, svc.ledger, catalog=svc.catalog, clock=svc.clock,
                customer_id=customer, product=product, idempotency_key=key,
                auto_renew=auto_renew,
            )  # fmt: skip
            await svc.notify(sessions_message(customer))
        return {**_session_dict(started.session), "replayed": started.replayed}

    extra = METERED_COLUMNS[:3] if tier else ["auto_renew"]
    emit(run(job), as_json, columns=[*COLUMNS, "paid_with", *extra])


@sessions_app.command("estimate")
def estimate(
    customer: str,
    tier: ResourceTier = typer.Option(..., "--tier", help="The resource tier."),
    duration: str = typer.Option(
        ..., "--duration", help="How long it would run: 90, 90s, 30m, 2h, 1h30m."
    ),
    as_json: bool = JsonOption,
) -> None:
    """What a metered session on --tier would cost CUSTOMER for --duration, at its plan's
    rate, and what a start would hold."""
    seconds = parse_duration(duration)

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            quote = await sessions.estimate(
                session,
                customer,
                catalog=svc.catalog,
                resource_tier=tier,
                duration_seconds=seconds,
            )
        return dataclasses.asdict(quote)

    emit(run(job), as_json)


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
def show(
    session_id: str,
    live: bool = typer.Option(
        False, "--watch", help="A live view of its cost, until it ends (Ctrl-C leaves)."
    ),
    interval: float = typer.Option(1.0, min=0.05, help="Seconds between --watch refreshes."),
    as_json: bool = JsonOption,
) -> None:
    """One session: usage, cost, seconds and tokens left; metered: tier, rate, paid time."""

    async def read(svc: Services) -> SessionView:
        async with svc.db.transaction() as session:
            return await sessions.get(session, session_id, clock=svc.clock)

    async def job(svc: Services) -> dict[str, Any]:
        view = await (watch(svc, read, interval=interval, live=not as_json) if live else read(svc))
        return _session_dict(view)

    shown = run(job)
    extra = METERED_COLUMNS if shown["kind"] == "metered" else ["tokens_left", "seconds_left"]
    emit(shown, as_json, columns=[*COLUMNS, *extra, "end_reason"])


@sessions_app.command("stop")
def stop(session_id: str, as_json: bool = JsonOption) -> None:
    """End a session now (reason `terminated`): a flat session's fee is not refunded; a
    metered session is billed for its run, its holds captured and released."""

    async def job(svc: Services) -> dict[str, Any]:
        view = await sessions.stop(
            svc.db, svc.ledger, session_id, catalog=svc.catalog, clock=svc.clock
        )
        if view.kind == SessionKind.FLAT:
            await svc.notify(sessions_message(view.customer_id))
        return _session_dict(view)

    emit(run(job), as_json, columns=[*COLUMNS, "billed_micros", "end_reason"])


@sessions_app.command("reap")
def reap(as_json: bool = JsonOption) -> None:
    """One pass of the reaper that `serve` runs: end metered sessions that are due (paid
    time run out, heartbeat missed), settle ended ones a dead process left unsettled, and
    capture flat-session fees whose hold a dead process left open."""

    async def job(svc: Services) -> dict[str, Any]:
        report = await sessions.reap(svc.db, svc.ledger, catalog=svc.catalog, clock=svc.clock)
        return {
            "ended": report.ended,
            "settled": report.settled,
            "fees_captured": report.fees_captured,
        }

    emit(run(job), as_json, columns=["ended", "settled", "fees_captured"])


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
