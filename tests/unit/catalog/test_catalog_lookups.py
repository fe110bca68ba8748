from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from tollhouse.catalog import (
    Catalog,
    CategoryLimits,
    CategoryNotFound,
    ModelNotFound,
    ModelNotInPlan,
    PlanNotFound,
    UpstreamNotFound,
    load_catalog,
    load_catalog_text,
)
from tollhouse.errors import TollhouseError
from tollhouse.gateway.admission import per_minute
from tollhouse.ratelimit import Limit


class TestLookups:
    def test_model_returns_the_entry(self, small: Catalog) -> None:
        model = small.model("gpt-4o")
        assert (model.id, model.category, model.upstream) == ("gpt-4o", "text", "openai")
        assert model.max_output_tokens == 16384

    def test_unknown_model_raises_model_not_found(self, small: Catalog) -> None:
        with pytest.raises(ModelNotFound) as caught:
            small.model("gpt-5")
        assert (caught.value.status, caught.value.code) == (404, "model-not-found")
        assert caught.value.extra == {"model": "gpt-5"}

    def test_unknown_plan_raises_plan_not_found(self, small: Catalog) -> None:
        with pytest.raises(PlanNotFound) as caught:
            small.plan("gold")
        assert (caught.value.status, caught.value.code) == (404, "plan-not-found")

    def test_plan_money_is_in_micros(self, small: Catalog) -> None:
        assert small.plan("pro").price_micros == 29_000_000
        assert small.plan("lifetime").interval == "once"

    @pytest.mark.parametrize(
        "lookup",
        [
            lambda c: c.category("audio"),
            lambda c: c.upstream("azure"),
            lambda c: c.limits_for("free", "audio"),
            lambda c: c.limits_for("gold", "text"),
            lambda c: c.can_use("free", "gpt-5"),
            lambda c: c.can_use("gold", "gpt-4o"),
            lambda c: c.models_for_plan("gold"),
            lambda c: c.upstream_api_key("azure"),
        ],
    )
    def test_unknown_names_raise_404s(
        self, small: Catalog, lookup: Callable[[Catalog], object]
    ) -> None:
        with pytest.raises((CategoryNotFound, UpstreamNotFound, PlanNotFound, ModelNotFound)) as e:
            lookup(small)
        assert isinstance(e.value, TollhouseError)
        assert e.value.status == 404


class TestLimits:
    def test_free_plan_gets_base_limits(self, small: Catalog) -> None:
        assert small.limits_for("free", "text") == CategoryLimits(40, 40000)

    def test_multiplier_scales_and_rounds_down(self, small: Catalog) -> None:
        # pro multiplier 2.5: 40 * 2.5 = 100, 40000 * 2.5 = 100000, 10 * 2.5 = 25
        assert small.limits_for("pro", "text") == CategoryLimits(100, 100000)
        assert small.limits_for("pro", "text-to-image") == CategoryLimits(25, None)

    def test_fractional_result_rounds_down_but_never_below_one(self) -> None:
        text = (
            'version: "1"\n'
            "plans:\n"
            "  free: {rank: 0, rate_limit_multiplier: 0.1}\n"
            "  half: {rank: 1, rate_limit_multiplier: 0.55}\n"
            "categories:\n"
            "  slow: {requests_per_minute: 3, tokens_per_minute: 7}\n"
        )
        tiny = load_catalog_text(text)
        assert tiny.limits_for("free", "slow") == CategoryLimits(1, 1)
        assert tiny.limits_for("half", "slow") == CategoryLimits(1, 3)  # 1.65 -> 1, 3.85 -> 3

    def test_a_burst_scales_with_the_plan_and_shapes_the_requests_limit(self) -> None:
        text = (
            'version: "1"\n'
            "plans:\n"
            "  free: {rank: 0, rate_limit_multiplier: 1}\n"
            "  double: {rank: 1, rate_limit_multiplier: 2}\n"
            "categories:\n"
            "  fast: {requests_per_minute: 600, burst: 20}\n"
            "  plain: {requests_per_minute: 60}\n"
        )
        catalog = load_catalog_text(text)
        assert catalog.limits_for("free", "fast") == CategoryLimits(600, None, burst=20)
        assert catalog.limits_for("double", "fast") == CategoryLimits(1200, None, burst=40)
        assert catalog.limits_for("free", "plain") == CategoryLimits(60, None, burst=None)
        # GCRA: a bucket of 20 refilled at 10 a second is 20 per 2 s; no burst, 60 per 60 s
        assert per_minute(600, "fast", "rpm", 20) == Limit(20, 2.0, "fast-rpm")
        assert per_minute(60, "plain", "rpm") == Limit(60, 60.0, "plain-rpm")

    def test_builtin_basic_doubles_free(self) -> None:
        assert load_catalog().limits_for("basic", "text") == CategoryLimits(80, 80000)

    def test_null_multiplier_is_unlimited(self, small: Catalog) -> None:
        limits = small.limits_for("lifetime", "text")
        assert limits == CategoryLimits(None, None)
        assert limits.is_unlimited

    def test_builtin_lifetime_is_unlimited(self) -> None:
        catalog = load_catalog()
        assert catalog.plan("lifetime").rate_limit_multiplier is None
        assert catalog.limits_for("lifetime", "text-to-video").is_unlimited

    def test_builtin_multipliers(self) -> None:
        catalog = load_catalog()
        assert catalog.limits_for("super", "text-to-video").requests_per_minute == 50
        assert catalog.limits_for("enterprise", "text").tokens_per_minute == 800_000
        assert catalog.plan("prime").rate_limit_multiplier == Decimal(5)


class TestAccess:
    def test_plan_at_min_plan_can_use(self, small: Catalog) -> None:
        assert small.can_use("pro", "gpt-4o")

    def test_plan_above_min_plan_can_use(self, small: Catalog) -> None:
        assert small.can_use("lifetime", "gpt-4o")

    def test_plan_below_min_plan_cannot_use(self, small: Catalog) -> None:
        assert not small.can_use("free", "gpt-4o")
        assert small.can_use("free", "gpt-4o-mini")

    def test_require_model_below_min_plan_raises_model_not_in_plan(self, small: Catalog) -> None:
        with pytest.raises(ModelNotInPlan) as caught:
            small.require_model("free", "gpt-4o")
        error = caught.value
        assert (error.status, error.code) == (403, "model-not-in-plan")
        assert error.extra == {"model": "gpt-4o", "required_plan": "pro", "plan": "free"}

    def test_require_model_returns_the_model(self, small: Catalog) -> None:
        assert small.require_model("pro", "gpt-4o").id == "gpt-4o"

    def test_models_for_plan_lists_usable_models_in_order(self, small: Catalog) -> None:
        assert [m.id for m in small.models_for_plan("free")] == ["gpt-4o-mini", "dall-e-3"]
        assert [m.id for m in small.models_for_plan("pro")] == [
            "gpt-4o",
            "gpt-4o-mini",
            "dall-e-3",
        ]

    def test_builtin_free_plan_sees_fewer_models_than_enterprise(self) -> None:
        catalog = load_catalog()
        free = {m.id for m in catalog.models_for_plan("free")}
        everything = {m.id for m in catalog.models_for_plan("enterprise")}
        assert everything == set(catalog.models)
        assert "gpt-4o-mini" in free
        assert "gpt-4.1" not in free


class TestUpstreamApiKey:
    def test_reads_the_environment(self, small: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TH_TEST_OPENAI_KEY", "sk-test")
        assert small.upstream_api_key("openai") == "sk-test"

    def test_unset_or_empty_variable_is_none(
        self, small: Catalog, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("TH_TEST_OPENAI_KEY", raising=False)
        assert small.upstream_api_key("openai") is None
        monkeypatch.setenv("TH_TEST_OPENAI_KEY", "")
        assert small.upstream_api_key("openai") is None

    def test_upstream_without_key_env_is_none(self, small: Catalog) -> None:
        assert small.upstream_api_key("local", environ={"ANYTHING": "x"}) is None

    def test_explicit_environ(self, small: Catalog) -> None:
        assert small.upstream_api_key("openai", environ={"TH_TEST_OPENAI_KEY": "k"}) == "k"


class TestUpstreamsWithoutKey:
    def test_an_upstream_whose_key_variable_is_unset_or_empty_is_listed(
        self, small: Catalog
    ) -> None:
        assert [u.name for u in small.upstreams_without_key(environ={})] == ["openai"]
        empty = {"TH_TEST_OPENAI_KEY": ""}
        assert [u.name for u in small.upstreams_without_key(environ=empty)] == ["openai"]

    def test_an_upstream_with_its_key_set_or_needing_none_is_not(self, small: Catalog) -> None:
        assert small.upstreams_without_key(environ={"TH_TEST_OPENAI_KEY": "sk-test"}) == []
