from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from tollhouse.catalog import builtin_catalog, load_catalog
from tollhouse.money import to_micros

CATEGORIES = {
    "text-to-image",
    "text-to-video",
    "text-to-speech",
    "speech-to-text",
    "image-analysis",
    "moderation",
    "video-analysis",
    "text",
    "visual-qa",
    "embeddings",
}
PLANS_BY_RANK = ["free", "basic", "pro", "prime", "super", "lifetime", "enterprise"]


class TestBuiltinCatalog:
    def test_load_catalog_without_path_is_the_builtin(self) -> None:
        assert load_catalog() is builtin_catalog()

    def test_header(self) -> None:
        catalog = load_catalog()
        assert catalog.currency == "usd"
        assert catalog.default_plan == "free"
        assert catalog.version

    def test_has_at_least_30_models_in_every_category(self) -> None:
        catalog = load_catalog()
        per_category = Counter(model.category for model in catalog.models.values())
        assert len(catalog.models) >= 30
        assert set(per_category) == CATEGORIES
        assert per_category["text-to-video"] >= 3

    @pytest.mark.parametrize(
        "model_id",
        [
            "dall-e-3",
            "gpt-image-1",
            "flux.1-schnell",
            "flux.1-dev",
            "stable-diffusion-xl",
            "tts-1",
            "tts-1-hd",
            "gpt-4o-mini-tts",
            "whisper-1",
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "llama-3.3-70b",
            "mixtral-8x7b",
            "qwen2.5-72b",
            "text-embedding-3-small",
            "text-embedding-3-large",
        ],
    )
    def test_registry_contains_well_known_model(self, model_id: str) -> None:
        assert model_id in load_catalog().models

    def test_whisper_is_speech_to_text_priced_per_audio_second(self) -> None:
        whisper = load_catalog().model("whisper-1")
        assert whisper.category == "speech-to-text"
        assert whisper.price.per_audio_second == Decimal(100)  # $0.006 a minute

    def test_moderation_model_is_free_in_its_own_category(self) -> None:
        moderation = load_catalog().model("omni-moderation-latest")
        assert moderation.category == "moderation"
        assert moderation.price.is_free

    @pytest.mark.parametrize(
        ("category", "rpm", "tpm"),
        [
            ("text-to-image", 10, None),
            ("text-to-video", 5, None),
            ("text-to-speech", 10, None),
            ("speech-to-text", 10, None),
            ("image-analysis", 20, None),
            ("moderation", 60, None),
            ("video-analysis", 10, 20000),
            ("text", 40, 40000),
            ("visual-qa", 20, 20000),
            ("embeddings", 60, 150000),
        ],
    )
    def test_free_plan_gets_the_base_limits(self, category: str, rpm: int, tpm: int | None) -> None:
        limits = load_catalog().limits_for("free", category)
        assert limits.requests_per_minute == rpm
        assert limits.tokens_per_minute == tpm

    def test_plans_rank_in_tier_order(self) -> None:
        catalog = load_catalog()
        assert [plan.name for plan in catalog.plans_by_rank] == PLANS_BY_RANK

    def test_plan_prices_and_multipliers(self) -> None:
        catalog = load_catalog()
        expected = {
            "free": ("0", "month", Decimal(1)),
            "basic": ("9", "month", Decimal(2)),
            "pro": ("29", "month", Decimal(3)),
            "prime": ("79", "month", Decimal(5)),
            "super": ("199", "month", Decimal(10)),
            "lifetime": ("999", "once", None),
            "enterprise": ("0", "month", Decimal(20)),
        }
        for name, (price, interval, multiplier) in expected.items():
            plan = catalog.plan(name)
            assert plan.price_micros == to_micros(price), name
            assert plan.interval == interval, name
            assert plan.rate_limit_multiplier == multiplier, name

    def test_features_grow_with_rank(self) -> None:
        catalog = load_catalog()
        assert catalog.plan("free").features == frozenset()
        assert catalog.plan("basic").has_feature("batch_generation")
        assert catalog.plan("pro").has_feature("priority_queue")
        assert catalog.plan("prime").has_feature("lora_training")
        assert not catalog.plan("pro").has_feature("lora_training")

    def test_meters_and_aggregations(self) -> None:
        meters = load_catalog().meters
        assert {name: meter.aggregation for name, meter in meters.items()} == {
            "api_calls": "count",
            "input_tokens": "sum",
            "output_tokens": "sum",
            "images": "sum",
            "audio_seconds": "sum",
            "characters": "sum",
            "compute_seconds": "sum",
            "jobs": "count",
            "storage_bytes": "max",
        }

    def test_upstreams(self) -> None:
        upstreams = load_catalog().upstreams
        assert upstreams["openai"].base_url == "https://api.openai.com/v1"
        assert upstreams["openai"].api_key_env == "OPENAI_API_KEY"
        assert upstreams["together"].base_url == "https://api.together.xyz/v1"
        assert upstreams["together"].api_key_env == "TOGETHER_API_KEY"
        assert upstreams["vllm"].base_url == "http://127.0.0.1:8000/v1"
        assert upstreams["vllm"].api_key_env is None
        assert upstreams["ollama"].base_url == "http://127.0.0.1:11434/v1"
        assert {"groq", "fireworks", "mistral", "deepinfra", "replicate"} <= set(upstreams)

    def test_some_models_need_pro_or_higher(self) -> None:
        catalog = load_catalog()
        pro_rank = catalog.plan("pro").rank
        gated = [m.id for m in catalog.models.values() if catalog.plan(m.min_plan).rank >= pro_rank]
        assert "gpt-4.1" in gated
        assert len(gated) >= 5

    def test_text_models_have_token_prices_and_output_caps(self) -> None:
        catalog = load_catalog()
        for model in catalog.models.values():
            if model.category in {"text", "visual-qa"}:
                assert model.max_output_tokens is not None, model.id
            if model.category == "text" and model.upstream not in {"ollama"}:
                assert (model.price.output_per_1m_tokens or 0) > 0, model.id

    def test_paid_models_price_in_their_unit(self) -> None:
        catalog = load_catalog()
        unit_of = {
            "text-to-image": "per_image",
            "text-to-video": "per_request_micros",
            "text-to-speech": "per_1m_characters",
            "speech-to-text": "per_audio_second",
            "embeddings": "input_per_1m_tokens",
        }
        for model in catalog.models.values():
            unit = unit_of.get(model.category)
            if unit is not None and not model.price.is_free:
                assert (getattr(model.price, unit) or 0) > 0, model.id

    def test_catalog_mappings_are_read_only(self) -> None:
        catalog = load_catalog()
        with pytest.raises(TypeError):
            catalog.models["x"] = catalog.model("gpt-4o")  # type: ignore[index]
