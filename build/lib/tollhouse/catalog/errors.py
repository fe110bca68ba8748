"""Catalog errors: a catalog file that does not validate, and lookups that miss.

```
TollhouseError
└── CatalogError (500 catalog-error)
    ├── CatalogInvalid (422 catalog-invalid)          errors=[{"loc", "msg"}]
    ├── ModelNotFound (404 model-not-found)           model
    ├── PlanNotFound (404 plan-not-found)             plan
    ├── CategoryNotFound (404 category-not-found)     category
    ├── UpstreamNotFound (404 upstream-not-found)     upstream
    ├── SessionProductNotFound (404 session-product-not-found)  product, known
    ├── CreditPackNotFound (404 credit-pack-not-found)  pack
    ├── ModelNotInPlan (403 model-not-in-plan)        model, required_plan, plan
    ├── FeatureNotInPlan (403 feature-not-in-plan)    feature, required_plan, plan
    ├── ResourceTierNotInPlan (403 resource-tier-not-in-plan)  tier, required_plan, plan
    ├── NotInCatalogInForce (409 not-in-catalog-in-force)  also a Conflict; missing, catalog,
    │                                                      catalog_in_force
    └── PlansInUseMissing (409 plans-in-use-missing)   also a Conflict; plans, catalog,
                                                       catalog_in_force
```

`required_plan` is the lowest-rank plan that has what is missing (`None` when no plan has
it), so a client can say "upgrade to pro". `catalog` and `catalog_in_force` describe a
catalog as `{"source", "version", "digest"}` (`source` is a path or `built-in`).
"""

from __future__ import annotations

from typing import Any

from tollhouse.errors import Conflict, TollhouseError


class CatalogError(TollhouseError):
    """Base of the catalog family."""

    status, code, title = 500, "catalog-error", "Catalog error"


class CatalogInvalid(CatalogError):
    """The catalog YAML does not load: syntax, schema or cross-reference errors.

    `errors` lists every problem found, each `{"loc": "models.gpt-4o.price.per_image",
    "msg": "..."}`; `loc` is the dotted key path in the YAML (`""` for the whole file).
    """

    status, code, title = 422, "catalog-invalid", "Invalid catalog"

    def __init__(self, detail: str, *, errors: list[dict[str, str]], **extra: Any) -> None:
        super().__init__(detail, errors=errors, **extra)

    @property
    def errors(self) -> list[dict[str, str]]:
        """The `{loc, msg}` list, in document order where known."""
        errors: list[dict[str, str]] = self.extra["errors"]
        return errors


class ModelNotFound(CatalogError):
    """No model with that id in the catalog. Extra: `model`."""

    status, code, title = 404, "model-not-found", "Model not found"


class PlanNotFound(CatalogError):
    """No plan with that name in the catalog. Extra: `plan`."""

    status, code, title = 404, "plan-not-found", "Plan not found"


class CategoryNotFound(CatalogError):
    """No model category with that name in the catalog. Extra: `category`."""

    status, code, title = 404, "category-not-found", "Model category not found"


class UpstreamNotFound(CatalogError):
    """No upstream with that name in the catalog. Extra: `upstream`."""

    status, code, title = 404, "upstream-not-found", "Upstream not found"


class SessionProductNotFound(CatalogError):
    """No session product of that name in the catalog. Extra: `product`, `known` (the
    catalog's product names)."""

    status, code, title = 404, "session-product-not-found", "Session product not found"


class CreditPackNotFound(CatalogError):
    """No credit pack of that name in the catalog. Extra: `pack`."""

    status, code, title = 404, "credit-pack-not-found", "Credit pack not found"


class ModelNotInPlan(CatalogError):
    """The customer's plan ranks below the model's `min_plan`.

    Extra: `model` (id), `required_plan` (the model's `min_plan`), and whatever else the
    raiser adds (the catalog adds `plan`, the customer's current plan).
    """

    status, code, title = 403, "model-not-in-plan", "Model not included in plan"

    def __init__(self, detail: str, *, model: str, required_plan: str, **extra: Any) -> None:
        super().__init__(detail, model=model, required_plan=required_plan, **extra)


class FeatureNotInPlan(CatalogError):
    """The customer's plan lacks a boolean feature (e.g. `lora_training`).

    Extra: `feature`, `required_plan` (lowest plan with it, or `None`), and whatever else the
    raiser adds (the catalog adds `plan`).
    """

    status, code, title = 403, "feature-not-in-plan", "Feature not included in plan"

    def __init__(
        self, detail: str, *, feature: str, required_plan: str | None, **extra: Any
    ) -> None:
        super().__init__(detail, feature=feature, required_plan=required_plan, **extra)


class ResourceTierNotInPlan(CatalogError):
    """The customer's plan does not offer a resource tier (e.g. `xlarge`).

    Extra: `tier`, `required_plan` (lowest plan with it, or `None`), and whatever else the
    raiser adds (the catalog adds `plan`).
    """

    status, code, title = 403, "resource-tier-not-in-plan", "Resource tier not included in plan"

    def __init__(self, detail: str, *, tier: str, required_plan: str | None, **extra: Any) -> None:
        super().__init__(detail, tier=tier, required_plan=required_plan, **extra)


class NotInCatalogInForce(Conflict, CatalogError):
    """A write names a plan, model or currency that the catalog in force (the one `serve`
    last recorded) does not have, or a plan whose terms (rank, price, interval, trial,
    included credits, rollover) differ there: this process runs another catalog.

    Extra: `missing` (`{"plans": [...], "models": [...], "currency": ...}`, what differs),
    `catalog` (this process's) and `catalog_in_force`, each `{source, version, digest}`.
    """

    status, code, title = 409, "not-in-catalog-in-force", "Not in the catalog in force"


class PlansInUseMissing(Conflict, CatalogError):
    """The catalog lacks plans that customers or subscriptions are on (or scheduled for):
    serving it would leave them on plans that do not exist.

    Extra: `plans` (sorted names), `catalog` and `catalog_in_force` (`None` when no catalog
    was recorded), each `{source, version, digest}`.
    """

    status, code, title = 409, "plans-in-use-missing", "Plans in use are missing"
