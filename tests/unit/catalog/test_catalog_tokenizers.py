"""Each model's tokenizer: named in the YAML (validated), else known from its name's family."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tollhouse.catalog import (
    DEFAULT_TOKENIZER,
    CatalogInvalid,
    builtin_catalog,
    load_catalog_text,
    tokenizer_for,
)


def load(data: dict[str, Any]) -> Any:
    return load_catalog_text(yaml.safe_dump(data, sort_keys=False), source="test.yaml")


class TestFamilies:
    @pytest.mark.parametrize(
        "name",
        [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4o-2024-05-13",
            "chatgpt-4o-latest",
            "gpt-4.1",
            "gpt-4.1-nano",
            "gpt-4.5-preview",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5.1",
            "o1",
            "o1-mini",
            "o3",
            "o3-pro",
            "o4-mini",
            "o4-mini-2025-04-16",
            "gpt-oss-120b",
            "openai/gpt-4o",
            "ft:gpt-4o-mini:acme::abc123",
            "GPT-4o",
        ],
    )
    def test_newer_openai_models_count_with_o200k(self, name: str) -> None:
        assert tokenizer_for(name) == "o200k_base"

    @pytest.mark.parametrize(
        "name",
        [
            "gpt-4",
            "gpt-4-turbo",
            "gpt-4-0613",
            "gpt-3.5-turbo",
            "gpt-35-turbo",
            "text-embedding-3-small",
            "text-embedding-ada-002",
            "ft:gpt-3.5-turbo:acme::abc",
        ],
    )
    def test_older_openai_models_count_with_cl100k(self, name: str) -> None:
        assert tokenizer_for(name) == "cl100k_base"

    @pytest.mark.parametrize(
        "name", ["llama3.2:3b", "Qwen/Qwen3-8B", "mistral-large-latest", "o1x", "gpt-4omni"]
    )
    def test_other_models_have_no_known_family(self, name: str) -> None:
        assert tokenizer_for(name) is None


class TestCatalogModels:
    def test_tokenizer_comes_from_the_upstream_model_then_the_id(
        self, catalog_data: dict[str, Any]
    ) -> None:
        models = catalog_data["models"]
        models["house-fast"] = {**models["gpt-4o-mini"], "upstream_model": "gpt-4.1-mini"}
        models["gpt-4o-mini"]["upstream_model"] = "azure-deployment-7"

        catalog = load(catalog_data)

        assert catalog.model("house-fast").tokenizer == "o200k_base"
        assert catalog.model("gpt-4o-mini").tokenizer == "o200k_base"
        assert catalog.model("dall-e-3").tokenizer == DEFAULT_TOKENIZER == "cl100k_base"

    def test_the_yaml_names_a_tokenizer_explicitly(self, catalog_data: dict[str, Any]) -> None:
        catalog_data["models"]["gpt-4o"]["tokenizer"] = "cl100k_base"
        catalog_data["models"]["dall-e-3"]["tokenizer"] = "o200k_base"

        catalog = load(catalog_data)

        assert catalog.model("gpt-4o").tokenizer == "cl100k_base"
        assert catalog.model("dall-e-3").tokenizer == "o200k_base"

    def test_an_unknown_tokenizer_is_a_catalog_error(self, catalog_data: dict[str, Any]) -> None:
        catalog_data["models"]["gpt-4o"]["tokenizer"] = "p50k_base"

        with pytest.raises(CatalogInvalid) as caught:
            load(catalog_data)

        [error] = caught.value.errors
        assert error["loc"] == "models.gpt-4o.tokenizer"
        assert "'cl100k_base' or 'o200k_base'" in error["msg"]

    def test_builtin_catalog_counts_gpt_4o_with_o200k_and_llama_with_cl100k(self) -> None:
        catalog = builtin_catalog()

        assert catalog.model("gpt-4o").tokenizer == "o200k_base"
        assert catalog.model("o4-mini").tokenizer == "o200k_base"
        assert catalog.model("text-embedding-3-small").tokenizer == "cl100k_base"
        assert catalog.model("llama-3.3-70b").tokenizer == "cl100k_base"
