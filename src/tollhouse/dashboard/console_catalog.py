"""The operator console's catalog page: the plans, model categories, models with their
prices, credit packs and session products of the catalog this process runs (the active
YAML), read from the runtime, never from a copy."""

from __future__ import annotations

from decimal import Decimal

from fastapi import Request
from fastapi.responses import Response

from tollhouse.dashboard.console import operator
from tollhouse.dashboard.web import ENV, page, router, runtime_of
from tollhouse.money import MICROS_PER_UNIT, format_amount


def format_rate(micros: Decimal | int | None, currency: str) -> str:
    """A price rate in micros (a model's rates may be fractional micros) for people, exact:
    `Decimal(150000)` -> `0.15 USD`, `Decimal("0.5")` -> `0.0000005 USD`; None -> `—`."""
    if micros is None:
        return "—"
    value = Decimal(micros)
    if value == value.to_integral_value():
        return format_amount(int(value), currency)
    return f"{value / MICROS_PER_UNIT:f} {currency.upper()}"


ENV.filters["rate"] = format_rate


@router.get("/console/catalog")
async def catalog_page(request: Request) -> Response:
    """The catalog in force: plans by rank, categories, models by id, packs, products."""
    signed = await operator(request)
    if isinstance(signed, Response):
        return signed
    catalog = runtime_of(request).catalog
    return page(
        request, "catalog.html", signed, catalog=catalog,
        plans=sorted(catalog.plans.values(), key=lambda plan: plan.rank),
        models=sorted(catalog.models.values(), key=lambda model: model.id),
    )  # fmt: skip
