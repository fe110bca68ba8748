"""Catalog errors: a catalog file that does not validate, and lookups that miss.

```
TollhouseError
└── CatalogError (500 catalog-error)
    ├── CatalogInvalid (422 catalog-invalid)          errors=[{"loc", "msg"}]
    ├── ModelNotFound (404 model-not-found)           model
    ├── PlanNotFound (404 plan-not-found)             plan
    ├── CategoryNotFound (404 category-not-found)     category
    ├── UpstreamNotFound (404 upstream-not-found)     upstream
    └── ModelNotInPlan (403 model-not-in-plan)        model, required_plan, plan
```
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
