"""`tollhouse plans list` and `tollhouse subscriptions show|change|cancel|resume|rollover`."""

from __future__ import annotations

from typing import Any

import typer

from tollhouse.catalog import service as catalogs
from tollhouse.cli.common import JsonOption, Services, emit, run
from tollhouse.server.invalidation import customer_message
from tollhouse.subscriptions import Subscription
from tollhouse.subscriptions import service as subscriptions

plans_app = typer.Typer(help="The catalog's plans.", no_args_is_help=True)
subscriptions_app = typer.Typer(help="Customers' subscriptions.", no_args_is_help=True)


def subscription_dict(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "customer_id": sub.customer_id,
        "plan": sub.plan,
        "status": sub.status,
        "current_period_start": sub.current_period_start,
        "current_period_end": sub.current_period_end,
        "trial_end": sub.trial_end,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "scheduled_plan": sub.scheduled_plan,
        "has_payment_method": sub.has_payment_method,
    }


async def _delivered(svc: Services, customer_id: str) -> None:
    """Deliver the credits a change owes and tell running servers the plan changed."""
    await subscriptions.deliver_grants(
        svc.db, ledger=svc.ledger, clock=svc.clock, customer_id=customer_id
    )
    await svc.notify(customer_message(customer_id))


@plans_app.command("list")
def plans_list(as_json: bool = JsonOption) -> None:
    """Plans by rank: price, interval, multiplier, included credits, quotas."""

    async def job(svc: Services) -> list[dict[str, Any]]:
        return [
            {
                "name": p.name,
                "rank": p.rank,
                "price_micros": p.price_micros,
                "interval": p.interval,
                "trial_days": p.trial_days,
                "rate_limit_multiplier": p.rate_limit_multiplier,
                "included_credits_micros": p.included_credits_micros,
                "quotas": dict(p.quotas),
                "features": sorted(p.features),
            }
            for p in sorted(svc.catalog.plans.values(), key=lambda p: p.rank)
        ]

    emit(
        run(job),
        as_json,
        columns=[
            "name",
            "price_micros",
            "interval",
            "rate_limit_multiplier",
            "included_credits_micros",
            "quotas",
        ],
    )


@subscriptions_app.command("show")
def show(customer: str, as_json: bool = JsonOption) -> None:
    """A customer's subscription and its quota usage this period."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            sub = await subscriptions.get_subscription(session, customer)
            usage = await subscriptions.quota_usage(
                session, customer, catalog=svc.catalog, clock=svc.clock
            )
        return {
            **subscription_dict(sub),
            "usage": [
                {"meter": q.meter, "used": q.used, "limit": q.limit, "remaining": q.remaining}
                for q in usage
                if q.limit is not None or q.used
            ],
        }

    emit(
        run(job), as_json, columns=["customer_id", "plan", "status", "current_period_end", "usage"]
    )


@subscriptions_app.command("change")
def change(customer: str, plan: str, as_json: bool = JsonOption) -> None:
    """Upgrade now (prorated) or schedule a downgrade at the period end."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            result = await subscriptions.change_plan(
                session, customer, plan, catalog=svc.catalog, clock=svc.clock
            )
        await _delivered(svc, customer)
        proration = result.proration
        return {
            **subscription_dict(result.subscription),
            "change": result.kind,
            "effective_at": result.effective_at,
            "proration_net_micros": proration.net_micros if proration else 0,
            "credits_granted_micros": result.credits_owed_micros,
        }

    emit(
        run(job),
        as_json,
        columns=["customer_id", "plan", "change", "effective_at", "proration_net_micros"],
    )


@subscriptions_app.command("cancel")
def cancel(
    customer: str,
    now: bool = typer.Option(False, "--now", help="Cancel at once instead of at the period end."),
    as_json: bool = JsonOption,
) -> None:
    """Cancel at the period end (or --now)."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            sub = await subscriptions.cancel(
                session, customer, at_period_end=not now, catalog=svc.catalog, clock=svc.clock
            )
        await _delivered(svc, customer)
        return subscription_dict(sub)

    emit(run(job), as_json, columns=["customer_id", "plan", "status", "cancel_at_period_end"])


@subscriptions_app.command("resume")
def resume(customer: str, as_json: bool = JsonOption) -> None:
    """Undo a scheduled cancellation or downgrade."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            sub = await subscriptions.resume(session, customer, clock=svc.clock)
        await svc.notify(customer_message(customer))
        return subscription_dict(sub)

    emit(run(job), as_json, columns=["customer_id", "plan", "status", "scheduled_plan"])


@subscriptions_app.command("rollover")
def rollover(as_json: bool = JsonOption) -> None:
    """Roll every subscription whose period ended (the server does this every 30 s); refused
    when this catalog is not the one in force and prices a plan in use otherwise."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            in_use = await subscriptions.plans_in_use(session)
            await catalogs.require_in_force(session, svc.catalog, plans=in_use)
        report = await subscriptions.roll_over(
            svc.db, catalog=svc.catalog, clock=svc.clock, ledger=svc.ledger
        )
        for customer_id in report.changed_customers:
            await svc.notify(customer_message(customer_id))
        return {
            "subscriptions": report.subscriptions,
            "periods_rolled": report.periods_rolled,
            "credits_granted": report.grants.granted,
            "credits_skipped": report.grants.skipped,
            "credits_failed": report.grants.failed,
        }

    emit(run(job), as_json)
