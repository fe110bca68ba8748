"""The catalog, read-only: plans, model categories with their base limits, models and prices."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter

from tollhouse.api import problems
from tollhouse.api.deps import Reader, RuntimeDep
from tollhouse.api.schemas import ResponseBody
from tollhouse.catalog import Model, Plan

router = APIRouter(prefix="/v1/catalog", tags=["catalog"], responses=problems.responses(401, 403))


class PriceOut(ResponseBody):
    per_request_micros: int | None
    input_per_1m_tokens_micros: Decimal | None
    output_per_1m_tokens_micros: Decimal | None
    per_image_micros: Decimal | None
    per_audio_second_micros: Decimal | None
    per_1m_characters_micros: Decimal | None


class ModelOut(ResponseBody):
    id: str
    category: str
    min_plan: str
    max_output_tokens: int | None
    description: str
    price: PriceOut

    @classmethod
    def of(cls, model: Model) -> ModelOut:
        price = model.price
        return cls(
            id=model.id,
            category=model.category,
            min_plan=model.min_plan,
            max_output_tokens=model.max_output_tokens,
            description=model.description,
            price=PriceOut(
                per_request_micros=price.per_request_micros,
                input_per_1m_tokens_micros=price.input_per_1m_tokens,
                output_per_1m_tokens_micros=price.output_per_1m_tokens,
                per_image_micros=price.per_image,
                per_audio_second_micros=price.per_audio_second,
                per_1m_characters_micros=price.per_1m_characters,
            ),
        )


class PlanOut(ResponseBody):
    name: str
    rank: int
    price_micros: int
    interval: str
    trial_days: int
    rate_limit_multiplier: Decimal | None
    """None = unlimited."""
    included_credits_micros: int
    features: list[str]
    quotas: dict[str, int]
    """Meter -> cap per billing period, in the meter's unit."""
    resource_tiers: list[str]
    session_rates_micros_per_hour: dict[str, int]
    rollover_cap_micros: int | None
    """Unused included credits carried into the next period, at most this; None = no rollover."""
    max_in_flight: int | None = None
    """Most gateway requests a customer on this plan may have under way at once; None = no cap."""
    description: str

    @classmethod
    def of(cls, plan: Plan) -> PlanOut:
        return cls(
            name=plan.name,
            rank=plan.rank,
            price_micros=plan.price_micros,
            interval=plan.interval,
            trial_days=plan.trial_days,
            rate_limit_multiplier=plan.rate_limit_multiplier,
            included_credits_micros=plan.included_credits_micros,
            features=sorted(plan.features),
            quotas=dict(plan.quotas),
            resource_tiers=sorted(plan.resource_tiers),
            session_rates_micros_per_hour=dict(plan.session_rates),
            rollover_cap_micros=plan.rollover.cap_micros if plan.rollover else None,
            max_in_flight=plan.max_in_flight,
            description=plan.description,
        )


class CategoryOut(ResponseBody):
    name: str
    requests_per_minute: int
    tokens_per_minute: int | None
    burst: int | None = None
    """Requests let through at once for a multiplier-1 plan; None: `requests_per_minute`."""


class CatalogOut(ResponseBody):
    version: str
    currency: str
    default_plan: str
    plans: list[PlanOut]
    categories: list[CategoryOut]
    models: list[ModelOut]
    meters: dict[str, str]


@router.get("")
async def get_catalog(_: Reader, runtime: RuntimeDep) -> CatalogOut:
    """The whole catalog this server runs with (prices as micros)."""
    catalog = runtime.catalog
    return CatalogOut(
        version=catalog.version,
        currency=catalog.currency,
        default_plan=catalog.default_plan,
        plans=[PlanOut.of(p) for p in sorted(catalog.plans.values(), key=lambda p: p.rank)],
        categories=[
            CategoryOut(
                name=c.name,
                requests_per_minute=c.requests_per_minute,
                tokens_per_minute=c.tokens_per_minute,
                burst=c.burst,
            )
            for c in catalog.categories.values()
        ],
        models=[ModelOut.of(m) for m in catalog.models.values()],
        meters={name: m.aggregation for name, m in catalog.meters.items()},
    )
