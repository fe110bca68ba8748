"""Catalog errors: a catalog file that does not validate, and lookups that miss.

```
TollhouseError
└── CatalogError (500 catalog-error)
    ├── CatalogInvalid (422 catalog-invalid)          errors=[{"loc", "msg"}]
    ├── ModelNotFound (404 model-not-found)           model
    ├── PlanNotFound (404 plan-not-found)             plan
    ├── CategoryNotFound (404 category-not-found)     category
    ├── UpstreamNotFound (404 upstream-not-found)     upstream
    ├── ModelNotInPlan (403 model-not-in-plan)        model, required_plan, plan
    ├── FeatureNotInPlan (403 feature-not-in-plan)    feature, required_plan, plan
    └── ResourceTierNotInPlan (403 resource-tier-not-in-plan)  tier, required_plan, plan
```

`required_plan` is the lowest-rank plan that has what is missing (`None` when no plan has
it), so a client can say "upgrade to pro".
"""

from __future__ import annotations

from typing import Any

from tollhouse.errors import TollhouseError


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
