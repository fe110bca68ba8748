"""Plan quotas, resource tiers, session rates, rollover, and the entitlement checks."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import yaml

from tollhouse.catalog import (
    CatalogInvalid,
    FeatureNotInPlan,
    ResourceTierNotInPlan,
    RolloverPolicy,
    load_catalog,
    load_catalog_text,
)


def load(data: dict[str, Any]) -> Any:
    return load_catalog_text(yaml.safe_dump(data, sort_keys=False), source="test.yaml")


class TestPlanExtensions:
    def test_quotas_tiers_rates_and_rollover_load(self, catalog_data: dict[str, Any]) -> None:
        catalog_data["plans"]["pro"].update(
            quotas={"api_calls": 5000, "storage_bytes": 10**9},
            resource_tiers=["small", "large"],
            session_rates={"small": "0.075", "large": "0.60"},
            rollover={"cap": "8.00"},
        )
        pro = load(catalog_data).plan("pro")
        assert dict(pro.quotas) == {"api_calls": 5000, "storage_bytes": 10**9}
        assert pro.quota("images") is None
        assert pro.resource_tiers == frozenset({"small", "large"})
        assert pro.session_rate_micros("small") == 75_000  # 0.5 h = 37,500 micros
        assert pro.rollover == RolloverPolicy(cap_micros=8_000_000)
        assert pro.rollover.carried(15_000_000) == 8_000_000

    def test_plans_without_the_new_keys_have_empty_defaults(self, small: Any) -> None:
        free = small.plan("free")
        assert (dict(free.quotas), free.resource_tiers, free.rollover) == ({}, frozenset(), None)

    def test_quota_on_an_unknown_meter_is_invalid(self, catalog_data: dict[str, Any]) -> None:
        catalog_data["plans"]["pro"]["quotas"] = {"gpu_hours": 1}
        with pytest.raises(CatalogInvalid) as raised:
            load(catalog_data)
        assert raised.value.errors[0]["loc"] == "plans.pro.quotas.gpu_hours"

    def test_session_rate_for_a_tier_not_in_the_plan_is_invalid(
        self, catalog_data: dict[str, Any]
    ) -> None:
        catalog_data["plans"]["pro"].update(resource_tiers=["small"], session_rates={"large": "1"})
        with pytest.raises(CatalogInvalid) as raised:
            load(catalog_data)
        assert raised.value.errors[0]["loc"] == "plans.pro.session_rates.large"

    def test_unknown_resource_tier_is_invalid(self, catalog_data: dict[str, Any]) -> None:
        catalog_data["plans"]["pro"]["resource_tiers"] = ["huge"]
        with pytest.raises(CatalogInvalid):
            load(catalog_data)

    def test_negative_quota_is_invalid(self, catalog_data: dict[str, Any]) -> None:
        catalog_data["plans"]["pro"]["quotas"] = {"api_calls": -1}
        with pytest.raises(CatalogInvalid):
            load(catalog_data)


class TestEntitlements:
    def test_lowest_plan_with_a_feature_tier_or_model(self) -> None:
        catalog = load_catalog()
        assert catalog.plan_with_feature("lora_training").name == "prime"  # type: ignore[union-attr]
        assert catalog.plan_with_feature("teleportation") is None
        assert catalog.plan_with_tier("xlarge").name == "prime"  # type: ignore[union-attr]
        assert catalog.lowest_plan_for_model("gpt-4.1").name == "pro"

    def test_missing_feature_is_403_naming_the_plan_that_has_it(self) -> None:
        catalog = load_catalog()
        with pytest.raises(FeatureNotInPlan) as raised:
            catalog.require_feature("basic", "lora_training")
        problem = raised.value.to_problem()
        assert problem["status"] == 403
        assert problem["type"].endswith("/feature-not-in-plan")
        assert (problem["feature"], problem["required_plan"]) == ("lora_training", "prime")
        assert catalog.require_feature("prime", "lora_training").name == "prime"

    def test_missing_tier_is_403_naming_the_plan_that_has_it(self) -> None:
        catalog = load_catalog()
        with pytest.raises(ResourceTierNotInPlan) as raised:
            catalog.require_tier("free", "large")
        assert raised.value.status == 403
        assert raised.value.extra["tier"] == "large"
        assert raised.value.extra["required_plan"] == "pro"
        assert catalog.require_tier("free", "small").name == "free"


class TestBuiltinPlans:
    def test_free_quotas_and_session_rate(self) -> None:
        free = load_catalog().plan("free")
        assert dict(free.quotas) == {
            "api_calls": 1_000,
            "images": 50,
            "jobs": 10,
            "storage_bytes": 1_000_000_000,
            "compute_seconds": 3_600,
        }
        assert free.session_rate_micros("small") == 75_000

    def test_quotas_grow_with_rank_and_lifetime_is_uncapped(self) -> None:
        catalog = load_catalog()
        ranked = [catalog.plan(n) for n in ("free", "basic", "pro", "prime", "super")]
        for lower, higher in itertools.pairwise(ranked):
            for meter, cap in lower.quotas.items():
                assert higher.quotas[meter] > cap, (higher.name, meter)
        assert dict(catalog.plan("lifetime").quotas) == {}

    def test_prime_and_super_roll_over_with_a_cap(self) -> None:
        catalog = load_catalog()
        assert catalog.plan("prime").rollover == RolloverPolicy(cap_micros=30_000_000)
        assert catalog.plan("super").rollover == RolloverPolicy(cap_micros=100_000_000)
        assert catalog.plan("pro").rollover is None
