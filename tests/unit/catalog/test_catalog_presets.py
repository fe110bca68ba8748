"""The catalogs `tollhouse init --preset` writes: each loads, is commented, and has what its
product shape needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollhouse.catalog import PRESETS, load_catalog, load_catalog_text, preset_text


class TestLlmApiPreset:
    """The default preset, `tollhouse init`'s catalog."""

    def test_loads_cleanly(self) -> None:
        catalog = load_catalog_text(preset_text(), source="tollhouse.yaml")
        assert 2 <= len(catalog.plans) <= 3
        assert len(catalog.categories) == 2
        assert len(catalog.models) == 3
        assert catalog.default_plan == "free"

    def test_points_at_a_local_openai_compatible_server(self) -> None:
        catalog = load_catalog_text(preset_text())
        [upstream] = catalog.upstreams.values()
        assert upstream.base_url == "http://127.0.0.1:8000/v1"
        assert upstream.api_key_env is not None
        assert upstream.protocol == "openai"

    def test_is_commented(self) -> None:
        text = preset_text()
        assert text.startswith("#")
        assert sum(1 for line in text.splitlines() if "#" in line) >= 10

    def test_written_to_a_file_it_loads_again(self, tmp_path: Path) -> None:
        path = tmp_path / "tollhouse.yaml"
        path.write_text(preset_text(), encoding="utf-8")
        catalog = load_catalog(path)
        assert catalog.can_use("free", "qwen3-8b")
        assert not catalog.can_use("free", "qwen3-32b")
        assert catalog.limits_for("lifetime", "text").is_unlimited


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_is_commented_and_sells_credits(name: str, tmp_path: Path) -> None:
    text = preset_text(name)
    path = tmp_path / "tollhouse.yaml"
    path.write_text(text, encoding="utf-8")
    catalog = load_catalog(path)
    assert (
        text.startswith("# tollhouse catalog") and f"`{name}`" in text.splitlines()[0]
    ) or name == "llm-api"
    assert sum(1 for line in text.splitlines() if "#" in line) >= 10
    assert catalog.credit_packs or name == "llm-api"
    assert catalog.default_plan in catalog.plans and len(catalog.plans) >= 2


def test_an_unknown_preset_names_the_presets() -> None:
    with pytest.raises(ValueError, match="llm-api, image-api"):
        preset_text("chatbot")


def test_image_api_charges_per_image_and_gates_training_by_plan() -> None:
    catalog = load_catalog_text(preset_text("image-api"))
    assert catalog.models["sdxl"].price.per_image == 10_000
    assert "image" in catalog.models["sdxl"].routes
    assert catalog.models["lora-training"].price.per_request_micros == 2_000_000
    assert not catalog.can_use("free", "lora-training")
    assert catalog.can_use("creator", "lora-training")
    assert catalog.plans["free"].quotas == {"images": 100, "jobs": 2}


def test_analysis_sessions_requires_a_one_dollar_day_for_its_models() -> None:
    catalog = load_catalog_text(preset_text("analysis-sessions"))
    [product] = catalog.session_products.values()
    assert (product.price_micros, product.duration_seconds, product.max_tokens) == (
        1_000_000, 86_400, 100_000,
    )  # fmt: skip
    assert product.required
    assert product.covers(catalog.models["indicators"])
    assert product.covers(catalog.models["market-summary"])


def test_compute_rents_tiers_by_the_hour() -> None:
    catalog = load_catalog_text(preset_text("compute"))
    assert catalog.plans["free"].resource_tiers == {"small"}
    assert catalog.plans["pro"].session_rates["large"] == 1_900_000
    assert catalog.compute_sessions.heartbeat_timeout_seconds == 180
    assert not catalog.models


def test_jobs_caps_jobs_per_plan() -> None:
    catalog = load_catalog_text(preset_text("jobs"))
    assert catalog.plans["free"].quotas["jobs"] == 50
    assert catalog.limits_for("enterprise", "jobs").is_unlimited
    assert not catalog.models["transcode"].routes  # called by the application, not the gateway
