"""The catalog in force: the one `tollhouse serve` last started with, recorded in the database.

Every process loads its catalog itself (each `serve`, each CLI call, each app that embeds
tollhouse), so two of them can run different files. `serve` records its catalog at start
(`record_served`); a write that names a plan, a model or the currency is checked against
that record (`require_in_force`) in the writer's transaction:

- this process's catalog has the recorded digest: nothing more to check;
- else each plan written must be in the catalog in force with the same terms (rank, price,
  interval, trial, included credits, rollover), each model must be in it, and the currency
  must be its currency; otherwise `NotInCatalogInForce` (409) names both catalogs.

No record yet (no `serve` ever started on this database): nothing is refused.

```python
from tollhouse.catalog import service as catalogs

async with db.transaction() as session:
    await catalogs.require_in_force(session, catalog, plans=["pro"])
    ...  # write the plan
```
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog.catalog import BUILTIN_SOURCE, Catalog, Plan
from tollhouse.catalog.errors import NotInCatalogInForce, PlansInUseMissing
from tollhouse.catalog.models import ServedCatalog
from tollhouse.clock import Clock

DIGEST_SHOWN = 12
"""Hex digits of a digest shown in messages."""


def plan_terms(plan: Plan) -> dict[str, Any]:
    """What a write of `plan` depends on, as JSON data (money in micros)."""
    rollover = plan.rollover
    return {
        "rank": plan.rank,
        "price_micros": plan.price_micros,
        "interval": plan.interval,
        "trial_days": plan.trial_days,
        "included_credits_micros": plan.included_credits_micros,
        "rollover": None if rollover is None else {"cap_micros": rollover.cap_micros},
    }


def terms(catalog: Catalog) -> dict[str, Any]:
    """What other processes check their writes against: `{"currency", "default_plan",
    "plans": {name: plan_terms}, "models": [ids]}`."""
    return {
        "currency": catalog.currency,
        "default_plan": catalog.default_plan,
        "plans": {name: plan_terms(plan) for name, plan in catalog.plans.items()},
        "models": list(catalog.models),
    }


def label(described: dict[str, str]) -> str:
    """`the built-in catalog (version V, sha256 0123456789ab)` or `catalog PATH (...)`."""
    source = described["source"]
    name = "the built-in catalog" if source == BUILTIN_SOURCE else f"catalog {source}"
    digest = described["digest"][:DIGEST_SHOWN]
    return f"{name} (version {described['version']}, sha256 {digest})"


async def in_force(session: AsyncSession) -> ServedCatalog | None:
    """The catalog `serve` recorded last, or `None` when none ever was."""
    query = select(ServedCatalog).order_by(ServedCatalog.id.desc()).limit(1)
    return (await session.scalars(query)).first()


async def require_in_force(
    session: AsyncSession,
    catalog: Catalog,
    *,
    plans: Iterable[str] = (),
    models: Iterable[str] = (),
    currency: bool = False,
) -> None:
    """Check that writing `plans`, `models` (and, with `currency`, an amount in
    `catalog.currency`) agrees with the catalog in force. Call it after `catalog` itself
    resolved the names (unknown names are `PlanNotFound`/`ModelNotFound` there).

    Raises:
        NotInCatalogInForce: `catalog` is not the one in force and a plan is missing there
            or has other terms, a model is missing there, or its currency differs.
    """
    record = await in_force(session)
    if record is None or record.digest == catalog.digest:
        return
    theirs: dict[str, Any] = record.terms
    wanted_plans = list(dict.fromkeys(plans))
    missing_plans = [name for name in wanted_plans if name not in theirs["plans"]]
    other_terms = {
        name: differences
        for name in wanted_plans
        if name in theirs["plans"]
        and (differences := _differences(theirs["plans"][name], plan_terms(catalog.plan(name))))
    }
    missing_models = [m for m in dict.fromkeys(models) if m not in theirs["models"]]
    other_currency = currency and theirs["currency"] != catalog.currency
    reasons = [f"plan {name!r} is not in the catalog in force" for name in missing_plans]
    reasons += [
        f"plan {name!r} has other terms in the catalog in force ({differences})"
        for name, differences in other_terms.items()
    ]
    reasons += [f"model {m!r} is not in the catalog in force" for m in missing_models]
    if other_currency:
        reasons.append(
            f"the catalog in force counts money in {theirs['currency']!r}, not {catalog.currency!r}"
        )
    if not reasons:
        return
    recorded_at = record.recorded_at.isoformat().replace("+00:00", "Z")
    raise NotInCatalogInForce(
        f"{'; '.join(reasons)}: this process uses {label(catalog.describe())}, the catalog "
        f"in force is {label(record.describe())}, recorded by `tollhouse serve` at "
        f"{recorded_at}. Use the same catalog here (TOLLHOUSE_CATALOG, or ./tollhouse.yaml "
        "in the working directory).",
        missing={
            "plans": missing_plans + list(other_terms),
            "models": missing_models,
            "currency": theirs["currency"] if other_currency else None,
        },
        catalog=catalog.describe(),
        catalog_in_force=record.describe(),
    )


def _differences(theirs: dict[str, Any], ours: dict[str, Any]) -> str:
    """`rank 10 there, 20 here; ...` for each term that differs ("" when none does)."""
    return "; ".join(
        f"{key} {theirs.get(key)} there, {ours[key]} here"
        for key in ours
        if theirs.get(key) != ours[key]
    )


async def record_served(
    session: AsyncSession, catalog: Catalog, *, plans_in_use: Iterable[str], clock: Clock
) -> ServedCatalog:
    """Record `catalog` as the one in force (what `serve` does at start), unless it lacks a
    plan in use. A catalog with the digest and source of the one in force adds no row.

    Raises:
        PlansInUseMissing: a plan some customer or subscription is on (or scheduled for) is
            not in `catalog`; nothing is recorded.
    """
    record = await in_force(session)
    lacking = sorted(set(plans_in_use) - set(catalog.plans))
    if lacking:
        before = "none was recorded" if record is None else label(record.describe())
        raise PlansInUseMissing(
            f"{label(catalog.describe())} lacks plans that customers are on or scheduled "
            f"for: {', '.join(lacking)} (the catalog in force: {before}); add them to it, "
            "or move those customers to other plans first",
            plans=lacking,
            catalog=catalog.describe(),
            catalog_in_force=None if record is None else record.describe(),
        )
    if record is not None and (record.digest, record.source) == (catalog.digest, catalog.source):
        return record
    served = ServedCatalog(
        digest=catalog.digest,
        source=catalog.source,
        version=catalog.version,
        terms=terms(catalog),
        recorded_at=clock.now(),
    )
    session.add(served)
    await session.flush()
    return served
