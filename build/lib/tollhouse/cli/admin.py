"""Admin verbs: customers, keys, credits, usage, catalog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from tollhouse.catalog import service as catalogs
from tollhouse.catalog import validate_catalog_file
from tollhouse.cli.common import (
    JsonOption,
    Services,
    emit,
    errors,
    print_error,
    run,
    show_secret,
)
from tollhouse.config import get_settings
from tollhouse.customers import Customer
from tollhouse.customers import service as customers
from tollhouse.errors import InvalidInput, TollhouseError
from tollhouse.ids import new_id
from tollhouse.keys import ApiKey, generate_key
from tollhouse.keys import service as keys
from tollhouse.ledger import service as ledger
from tollhouse.metering import service as metering
from tollhouse.money import format_micros, to_micros
from tollhouse.server.invalidation import key_message
from tollhouse.subscriptions import service as subscriptions

customers_app = typer.Typer(help="Create and list customers.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Issue, list, rotate and revoke API keys; generate one for TOLLHOUSE_BOOTSTRAP_KEY.",
    no_args_is_help=True,
)
credits_app = typer.Typer(help="Grant credits, read balances and history.", no_args_is_help=True)
catalog_app = typer.Typer(help="Check catalog files.", no_args_is_help=True)


KEY_COLUMNS = ["id", "customer_id", "name", "scopes", "expires_at"]
"""What `keys create` and `keys rotate` show of the new key, beside its secret."""


def customer_dict(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "email": customer.email,
        "external_id": customer.external_id,
        "plan": customer.plan,
        "created_at": customer.created_at,
        "country": customer.country,
    }


def key_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "customer_id": key.customer_id,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "allowed_models": key.allowed_models,
        "rate_limit_rpm": key.rate_limit_rpm,
        "max_in_flight": key.max_in_flight,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
        "created_at": key.created_at,
        "successor_id": key.successor_id,
    }


@customers_app.command("create")
def customers_create(
    name: str = typer.Option(..., help="Display name."),
    email: str | None = typer.Option(None),
    external_id: str | None = typer.Option(None, help="Your own unique id for this customer."),
    plan: str | None = typer.Option(None, help="Catalog plan; default: the catalog's default."),
    timezone: str = typer.Option(
        "UTC", help="IANA time zone: billing periods start at its midnight."
    ),
    country: str | None = typer.Option(
        None, help="ISO 3166-1 alpha-2 code (DE): its invoices' tax rate."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a customer, subscribed at once to its plan (included credits granted)."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            customer = await subscriptions.create_customer(
                session,
                name=name,
                email=email,
                external_id=external_id,
                plan=plan,
                timezone=timezone,
                catalog=svc.catalog,
                clock=svc.clock,
            )
            await customers.set_country(session, customer.id, country)
        await subscriptions.deliver_grants(
            svc.db, ledger=svc.ledger, clock=svc.clock, customer_id=customer.id
        )
        return customer_dict(customer)

    emit(run(job), as_json, columns=["id", "name", "plan", "email"], title="customer created")


@customers_app.command("update")
def customers_update(
    customer_id: str,
    country: str | None = typer.Option(
        None, help="ISO 3166-1 alpha-2 code (DE); omit it to clear the country."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change a customer's country (the tax rate of invoices built from now on)."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            return customer_dict(await customers.set_country(session, customer_id, country))

    emit(run(job), as_json, columns=["id", "name", "plan", "country"])


@customers_app.command("list")
def customers_list(
    limit: int = typer.Option(100, min=1, max=1000), as_json: bool = JsonOption
) -> None:
    """List customers."""

    async def job(svc: Services) -> list[dict[str, Any]]:
        async with svc.db.transaction() as session:
            return [customer_dict(c) for c in await customers.list_customers(session, limit=limit)]

    emit(run(job), as_json, columns=["id", "name", "plan", "email", "created_at"])


@keys_app.command("create")
def keys_create(
    customer: str | None = typer.Option(None, help="Customer id (cus_...)."),
    operator: bool = typer.Option(False, "--operator", help="An operator key (no customer)."),
    name: str = typer.Option("default"),
    scopes: str = typer.Option("read,write", help="Comma-separated: read, write, admin."),
    expires_in_days: int | None = typer.Option(None, min=1),
    models: str | None = typer.Option(None, help="Comma-separated model ids this key may call."),
    rpm: int | None = typer.Option(None, min=1, help="This key's own requests-per-minute cap."),
    max_in_flight: int | None = typer.Option(
        None, min=1, help="This key's own cap on gateway requests under way at once."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Issue an API key. The secret is printed once; store it now."""
    if (customer is None) == (not operator):
        errors.print("[red]error[/red]: give exactly one of --customer or --operator")
        raise typer.Exit(2)

    async def job(svc: Services) -> dict[str, Any]:
        allowed = [m.strip() for m in models.split(",") if m.strip()] if models else None
        for model_id in allowed or []:
            svc.catalog.model(model_id)
        expires = svc.clock.now() + timedelta(days=expires_in_days) if expires_in_days else None
        async with svc.db.transaction() as session:
            await catalogs.require_in_force(session, svc.catalog, models=allowed or ())
            issued = await keys.create_key(
                session,
                customer_id=customer,
                name=name,
                issuer=None,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
                expires_at=expires,
                allowed_models=allowed,
                rate_limit_rpm=rpm,
                max_in_flight=max_in_flight,
                env=svc.settings.key_env,
                secret=svc.key_secret,
                clock=svc.clock,
            )
        return {**key_dict(issued.key), "key": issued.secret}

    created = run(job)
    if as_json:
        emit(created, True)
        return
    emit(created, False, columns=KEY_COLUMNS, title="key created")
    show_secret(created["key"])


@keys_app.command("list")
def keys_list(
    customer: str | None = typer.Option(None, help="Customer id; omit for every key."),
    as_json: bool = JsonOption,
) -> None:
    """List keys (never their secrets)."""

    async def job(svc: Services) -> list[dict[str, Any]]:
        async with svc.db.transaction() as session:
            return [key_dict(k) for k in await keys.list_keys(session, customer_id=customer)]

    emit(
        run(job),
        as_json,
        columns=["id", "prefix", "name", "scopes", "expires_at", "revoked_at", "last_used_at"],
    )


@keys_app.command("revoke")
def keys_revoke(key_id: str, as_json: bool = JsonOption) -> None:
    """Revoke a key (running servers refuse it within 2 s, at once with Redis)."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            revoked = await keys.revoke_key(session, key_id, clock=svc.clock)
        await svc.notify(key_message(revoked.id))
        return key_dict(revoked)

    emit(run(job), as_json, columns=["id", "prefix", "revoked_at"], title="key revoked")


@keys_app.command("rotate")
def keys_rotate(
    key_id: str,
    grace_seconds: int = typer.Option(
        keys.DEFAULT_GRACE_SECONDS,
        min=0,
        max=keys.MAX_GRACE_SECONDS,
        help="Seconds the old key keeps working (never beyond its own expiry); 0 = stop now.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Issue a successor with the key's settings (printed once) and retire the old key after
    the grace period (running servers see its new expiry at once with Redis, else within
    30 s)."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            rotation = await keys.rotate_key(
                session,
                key_id,
                issuer=None,
                grace_seconds=grace_seconds,
                secret=svc.key_secret,
                clock=svc.clock,
            )
        await svc.notify(key_message(rotation.previous.id))
        return {
            **key_dict(rotation.successor.key),
            "key": rotation.successor.secret,
            "previous_key_id": rotation.previous.id,
            "previous_key_expires_at": rotation.previous_expires_at,
        }

    rotated = run(job)
    if as_json:
        emit(rotated, True)
        return
    columns = [*KEY_COLUMNS, "previous_key_id", "previous_key_expires_at"]
    emit(rotated, False, columns=columns, title="key rotated")
    show_secret(rotated["key"])


@keys_app.command("generate")
def keys_generate(
    env: str | None = typer.Option(
        None, help="The key's <env> label, 1..12 of [a-z0-9]; default: TOLLHOUSE_KEY_ENV (live)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Print a new well-formed key, alone on its line and stored nowhere: set it as
    TOLLHOUSE_BOOTSTRAP_KEY and `serve` installs it as the operator key on first start."""
    try:
        key = generate_key(env or get_settings().key_env)
    except ValueError as error:
        errors.print(f"[red]error[/red]: {escape(str(error))}", highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        emit({"key": key}, True)
    else:
        typer.echo(key)


def _parse_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name} is not an ISO 8601 time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@credits_app.command("grant", context_settings={"ignore_unknown_options": True})
def credits_grant(
    customer: str,
    amount: str = typer.Argument(..., help="Amount in currency units, e.g. 10 or 2.50 (dollars)."),
    expires_at: str | None = typer.Option(None, help="ISO 8601; UTC if no offset."),
    priority: int = typer.Option(0),
    source: str = typer.Option("manual", help="promotional, included, purchased or manual."),
    idempotency_key: str | None = typer.Option(None, help="Default: a new random key."),
    description: str = typer.Option(""),
    as_json: bool = JsonOption,
) -> None:
    """Add credits to a customer's wallet."""

    async def job(svc: Services) -> dict[str, Any]:
        try:
            micros = to_micros(amount)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        async with svc.db.transaction() as session:
            await customers.get(session, customer)
            await catalogs.require_in_force(session, svc.catalog, currency=True)
        grant = await svc.ledger.grant(
            customer,
            micros,
            idempotency_key=idempotency_key or new_id("cli"),
            expires_at=_parse_time(expires_at, "expires_at"),
            priority=priority,
            source=source,
            description=description,
            currency=svc.catalog.currency,
        )
        return {
            "id": grant.id,
            "customer_id": customer,
            "amount_micros": grant.amount,
            "remaining_micros": grant.remaining,
            "expires_at": grant.expires_at,
        }

    emit(run(job), as_json, title="credits granted")


@credits_app.command("balance")
def credits_balance(customer: str, as_json: bool = JsonOption) -> None:
    """A customer's wallet: available, held, and live grants."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            await customers.get(session, customer)
            balance = await ledger.balance(
                session, customer, currency=svc.catalog.currency, now=svc.clock.now()
            )
        return {
            "customer_id": customer,
            "currency": svc.catalog.currency,
            "available_micros": balance.available_micros,
            "held_micros": balance.held_micros,
            "overdraft_limit_micros": balance.overdraft_limit_micros,
            "available": format_micros(balance.available_micros, svc.catalog.currency),
            "grants": [
                {"id": g.id, "remaining_micros": g.remaining, "expires_at": g.expires_at}
                for g in balance.grants
            ],
        }

    data = run(job)
    emit(data, as_json, columns=["customer_id", "available", "available_micros", "held_micros"])


@credits_app.command("history")
def credits_history(
    customer: str, limit: int = typer.Option(50, min=1, max=500), as_json: bool = JsonOption
) -> None:
    """Ledger entries on the customer's side, newest first."""

    async def job(svc: Services) -> list[dict[str, Any]]:
        async with svc.db.transaction() as session:
            await customers.get(session, customer)
            entries = await ledger.transactions(session, customer, limit=limit)
        return [
            {
                "id": e.id,
                "kind": e.kind,
                "amount_micros": e.amount,
                "account_kind": e.account_kind,
                "hold_id": e.hold_id,
                "created_at": e.created_at,
            }
            for e in entries
        ]

    emit(
        run(job),
        as_json,
        columns=["id", "created_at", "kind", "amount_micros", "account_kind", "hold_id"],
    )


def usage(
    customer: str,
    meter: list[str] = typer.Option([], help="Repeat for several; default: all meters."),
    days: int = typer.Option(30, min=1, max=3660, help="Look back this many days."),
    window: str | None = typer.Option(None, help="hour, day or month."),
    group_by: str | None = typer.Option(None, help="model, key or upstream."),
    as_json: bool = JsonOption,
) -> None:
    """A customer's usage per meter over the last `days` days (window hour|day|month, group
    by model|key: other values are refused by the usage query)."""

    async def job(svc: Services) -> list[dict[str, Any]]:
        meters = svc.catalog.aggregations(meter or None)
        end = svc.clock.now()
        async with svc.db.transaction() as session:
            await customers.get(session, customer)
            buckets = await metering.query_usage(
                session,
                customer_id=customer,
                meters=meters,
                start=end - timedelta(days=days),
                end=end,
                window=window,  # type: ignore[arg-type]
                group_by=group_by,  # type: ignore[arg-type]
            )
        return [
            {"meter": b.meter, "window_start": b.window_start, "group": b.group, "value": b.value}
            for b in buckets
        ]

    emit(run(job), as_json, columns=["meter", "window_start", "group", "value"])


@catalog_app.command("validate")
def catalog_validate(path: Path, as_json: bool = JsonOption) -> None:
    """Check a catalog file; every problem is printed with the key that has it."""
    try:
        catalog = validate_catalog_file(path)
    except TollhouseError as error:
        if as_json:
            emit(error.to_problem(), True)
        else:
            print_error("invalid catalog", error)
        raise typer.Exit(1) from None
    summary = {
        "path": str(path),
        "version": catalog.version,
        "plans": len(catalog.plans),
        "categories": len(catalog.categories),
        "models": len(catalog.models),
        "valid": True,
    }
    emit(summary, as_json, title="catalog is valid")
