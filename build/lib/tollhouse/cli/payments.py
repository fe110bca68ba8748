"""`tollhouse packs list|buy` and `tollhouse payments list|show|record|refund|auto-top-up`.

`packs buy` records a manual payment of the pack (an operator who was paid some other way),
or with `--checkout` prints a Stripe Checkout URL to send the customer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import typer

from tollhouse.cli.common import JsonOption, Services, emit, run
from tollhouse.errors import InvalidInput
from tollhouse.ids import new_id
from tollhouse.money import format_micros, to_micros
from tollhouse.payments import Payments, PaymentView
from tollhouse.payments import service as payments_service

packs_app = typer.Typer(
    help="Credit packs: list them, buy one for a customer.", no_args_is_help=True
)
payments_app = typer.Typer(
    help="Payments: list, show, record, refund, auto top-up.", no_args_is_help=True
)

KeyOption = typer.Option(None, "--idempotency-key", help="Default: a new random key.")
COLUMNS = ["id", "customer_id", "provider", "kind", "item", "amount_micros", "status", "paid_at"]


@asynccontextmanager
async def _payments(svc: Services) -> AsyncIterator[Payments]:
    """Payments over the CLI's services (Stripe when the environment configures it)."""
    payments = Payments.from_settings(
        svc.settings, svc.db, svc.ledger, catalog=svc.catalog, clock=svc.clock
    )
    try:
        yield payments
    finally:
        await payments.stop()


def _micros(amount: str, loc: str, *, allow_zero: bool = False) -> int:
    """Dollars (`"2.50"`) as micros. Raises: InvalidInput (not a whole number of micros, or
    not positive)."""
    try:
        micros = to_micros(amount)
    except ValueError as error:
        raise InvalidInput(str(error), errors=[{"loc": loc, "msg": str(error)}]) from None
    if micros < 0 or (micros == 0 and not allow_zero):
        raise InvalidInput(f"{loc} must be positive", errors=[{"loc": loc, "msg": "positive"}])
    return micros


def _payment(view: PaymentView) -> dict[str, Any]:
    return dataclasses.asdict(view)


@packs_app.command("list")
def packs_list(as_json: bool = JsonOption) -> None:
    """The catalog's credit packs: price, credits, bonus and its expiry."""

    async def job(svc: Services) -> list[dict[str, Any]]:
        currency = svc.catalog.currency
        return [
            {
                "name": pack.name,
                "price_micros": pack.price_micros,
                "credits_micros": pack.credits_micros,
                "bonus_micros": pack.bonus_micros,
                "bonus_expiry_days": pack.bonus_expiry_days,
                "price": format_micros(pack.price_micros, currency),
                "total": format_micros(pack.total_micros, currency),
                "description": pack.description,
            }
            for pack in svc.catalog.credit_packs.values()
        ]

    emit(run(job), as_json, columns=["name", "price", "total", "bonus_expiry_days", "description"])


@packs_app.command("buy")
def packs_buy(
    customer: str,
    pack: str,
    checkout: bool = typer.Option(
        False, "--checkout", help="Open a Stripe Checkout and print its URL instead."
    ),
    description: str = typer.Option("", help="Manual payments: the transfer's reference."),
    success_url: str | None = typer.Option(None, help="Checkout: where Stripe sends the payer."),
    cancel_url: str | None = typer.Option(None, help="Checkout: where a cancel goes."),
    idempotency_key: str | None = KeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Buy CUSTOMER the credit pack PACK: record a manual payment of it (you were paid some
    other way), or with --checkout open a Stripe Checkout for the customer to pay."""

    async def job(svc: Services) -> dict[str, Any]:
        key = idempotency_key or new_id("cli")
        async with _payments(svc) as payments:
            if not checkout:
                return _payment(
                    await payments.record_manual(
                        customer, pack=pack, idempotency_key=key, description=description
                    )
                )
            success = success_url or svc.settings.checkout_success_url
            if success is None:
                msg = "--success-url is required (or set TOLLHOUSE_CHECKOUT_SUCCESS_URL)"
                raise InvalidInput(msg, errors=[{"loc": "success_url", "msg": msg}])
            cancel = cancel_url or svc.settings.checkout_cancel_url or success
            opened = await payments.checkout(
                customer, payments_service.Item("credit_pack", pack), success_url=success,
                cancel_url=cancel, idempotency_key=key,
            )  # fmt: skip
            return dataclasses.asdict(opened)

    columns = ["id", "status", "url"] if checkout else COLUMNS
    emit(run(job), as_json, columns=columns)


@payments_app.command("list")
def payments_list(
    customer: str | None = typer.Option(None, help="Only this customer's payments."),
    status: str | None = typer.Option(None, help="pending, succeeded or failed."),
    limit: int = typer.Option(50, min=1, max=payments_service.MAX_PAGE),
    as_json: bool = JsonOption,
) -> None:
    """Payments, newest first."""

    async def job(svc: Services) -> list[dict[str, Any]]:
        async with svc.db.transaction() as session:
            views = await payments_service.list_payments(
                session, customer_id=customer, status=status, limit=limit
            )
        return [_payment(view) for view in views]

    emit(run(job), as_json, columns=COLUMNS)


@payments_app.command("show")
def payments_show(payment_id: str, as_json: bool = JsonOption) -> None:
    """One payment: what it bought, its grants and its refunds."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            return _payment(await payments_service.get_payment(session, payment_id))

    emit(run(job), as_json, columns=[*COLUMNS, "credits_micros", "bonus_micros", "refunded_micros"])


@payments_app.command("record")
def payments_record(
    customer: str,
    pack: str | None = typer.Option(None, help="A credit pack: its credits and bonus."),
    amount: str | None = typer.Option(None, help="Or an amount paid, e.g. 25.00: as many credits."),
    description: str = typer.Option("", help="The transfer's reference, the invoice number."),
    idempotency_key: str | None = KeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Record a payment CUSTOMER made outside Stripe (provider `manual`) and post it."""

    async def job(svc: Services) -> dict[str, Any]:
        micros = None if amount is None else _micros(amount, "amount")
        async with _payments(svc) as payments:
            view = await payments.record_manual(
                customer, idempotency_key=idempotency_key or new_id("cli"), pack=pack,
                amount_micros=micros, description=description,
            )  # fmt: skip
        return _payment(view)

    emit(run(job), as_json, columns=COLUMNS)


@payments_app.command("refund")
def payments_refund(
    payment_id: str,
    amount: str | None = typer.Option(None, help="Money refunded, e.g. 5.00 (default: all)."),
    idempotency_key: str | None = KeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Refund a manual payment: its share of the credits is taken back as far as the wallet
    still holds them (a Stripe payment is refunded in Stripe)."""

    async def job(svc: Services) -> dict[str, Any]:
        micros = None if amount is None else _micros(amount, "amount")
        async with _payments(svc) as payments:
            view = await payments.refund(
                payment_id, amount_micros=micros, idempotency_key=idempotency_key or new_id("cli")
            )
        return _payment(view)

    emit(run(job), as_json, columns=[*COLUMNS, "refunded_micros"])


@payments_app.command("auto-top-up")
def payments_auto_top_up(
    customer: str,
    threshold: str = typer.Option("0", help="Buy when the balance falls below this, e.g. 5.00."),
    pack: str | None = typer.Option(None, help="The credit pack to buy."),
    disable: bool = typer.Option(False, "--disable", help="Turn it off."),
    as_json: bool = JsonOption,
) -> None:
    """Set CUSTOMER's auto top-up: buy PACK off-session (Stripe) when a debit takes the
    wallet below THRESHOLD, once per crossing. Servers pick the change up within 30 s."""

    async def job(svc: Services) -> dict[str, Any]:
        micros = _micros(threshold, "threshold", allow_zero=True)
        async with _payments(svc) as payments:
            current = None
            if pack is None:
                async with svc.db.transaction() as session:
                    current = await payments_service.get_rule(session, customer)
            chosen = pack or (current.pack if current else None)
            if chosen is None:
                raise InvalidInput(
                    "--pack is required", errors=[{"loc": "pack", "msg": "required"}]
                )
            rule = await payments.set_auto_top_up(
                customer, enabled=not disable, threshold_micros=micros, pack=chosen
            )
        return dataclasses.asdict(rule)

    emit(run(job), as_json, columns=["customer_id", "enabled", "threshold_micros", "pack", "armed"])
