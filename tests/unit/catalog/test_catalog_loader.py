from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tollhouse.catalog import (
    STANDARD_METERS,
    Catalog,
    CatalogInvalid,
    load_catalog,
    load_catalog_data,
    load_catalog_text,
    validate_catalog_file,
)


def load_yaml_data(data: dict[str, Any]) -> Catalog:
    """Dump `data` to YAML and load it the way a file is loaded."""
    return load_catalog_text(yaml.safe_dump(data, sort_keys=False), source="test.yaml")


def invalid(data: dict[str, Any]) -> CatalogInvalid:
    with pytest.raises(CatalogInvalid) as caught:
        load_yaml_data(data)
    return caught.value


def locs(error: CatalogInvalid) -> list[str]:
    return [item["loc"] for item in error.errors]


class TestSchemaErrors:
    def test_bad_decimal_names_its_key_path(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["models"]["gpt-4o"]["price"]["input_per_1m_tokens"] = "2.5 dollars"
        error = invalid(data)
        assert error.errors == [
            {
                "loc": "models.gpt-4o.price.input_per_1m_tokens",
                "msg": "Input should be a valid decimal",
            }
        ]
        assert "models.gpt-4o.price.input_per_1m_tokens: Input should be a valid decimal" in (
            error.detail
        )

    def test_error_is_422_catalog_invalid(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["version"] = ""
        error = invalid(data)
        assert (error.status, error.code) == (422, "catalog-invalid")
        assert error.to_problem()["errors"] == error.errors

    def test_unknown_key_is_rejected(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["models"]["gpt-4o"]["max_tokens"] = 10
        assert locs(invalid(data)) == ["models.gpt-4o.max_tokens"]

    def test_unknown_top_level_key_is_rejected(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["credit_packz"] = {}
        assert locs(invalid(data)) == ["credit_packz"]

    def test_negative_price_is_rejected(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["models"]["dall-e-3"]["price"]["per_image"] = "-0.04"
        error = invalid(data)
        assert locs(error) == ["models.dall-e-3.price.per_image"]
        assert "greater than or equal to 0" in error.errors[0]["msg"]

    def test_negative_plan_price_is_rejected(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["plans"]["pro"]["price"] = -29
        assert locs(invalid(data)) == ["plans.pro.price"]

    def test_plan_price_finer_than_a_micro_is_rejected(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["plans"]["pro"]["price"] = "29.0000001"
        error = invalid(data)
        assert locs(error) == ["plans.pro.price"]
        assert "6 decimal places" in error.errors[0]["msg"]

    def test_boolean_money_is_rejected(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["plans"]["pro"]["included_credits"] = True
        assert locs(invalid(data)) == ["plans.pro.included_credits"]

    def test_zero_multiplier_is_rejected(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["plans"]["pro"]["rate_limit_multiplier"] = 0
        assert locs(invalid(data)) == ["plans.pro.rate_limit_multiplier"]

    def test_missing_required_field_names_it(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        del data["categories"]["text"]["requests_per_minute"]
        error = invalid(data)
        assert error.errors == [
            {"loc": "categories.text.requests_per_minute", "msg": "Field required"}
        ]

    def test_bad_interval_is_rejected(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["plans"]["pro"]["interval"] = "fortnight"
        assert locs(invalid(data)) == ["plans.pro.interval"]

    def test_base_url_must_be_http(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["upstreams"]["local"]["base_url"] = "127.0.0.1:8000"
        assert locs(invalid(data)) == ["upstreams.local.base_url"]

    def test_every_error_is_reported_at_once(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["models"]["gpt-4o"]["price"]["per_image"] = "x"
        data["categories"]["text"]["requests_per_minute"] = 0
        assert sorted(locs(invalid(data))) == [
            "categories.text.requests_per_minute",
            "models.gpt-4o.price.per_image",
        ]


class TestReferenceErrors:
    def test_unknown_category(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["models"]["gpt-4o"]["category"] = "llm"
        error = invalid(data)
        assert locs(error) == ["models.gpt-4o.category"]
        assert "unknown category 'llm'" in error.errors[0]["msg"]

    def test_unknown_upstream(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["models"]["gpt-4o"]["upstream"] = "azure"
        assert locs(invalid(data)) == ["models.gpt-4o.upstream"]

    def test_unknown_min_plan(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["models"]["gpt-4o"]["min_plan"] = "gold"
        assert locs(invalid(data)) == ["models.gpt-4o.min_plan"]

    def test_unknown_default_plan(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["default_plan"] = "gold"
        assert locs(invalid(data)) == ["default_plan"]

    def test_duplicate_rank(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["plans"]["lifetime"]["rank"] = 20
        error = invalid(data)
        assert locs(error) == ["plans.lifetime.rank"]
        assert "'pro'" in error.errors[0]["msg"]

    def test_no_plans(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["plans"] = {}
        assert "plans" in locs(invalid(data))

    def test_all_reference_errors_are_reported_together(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["models"]["gpt-4o"]["category"] = "llm"
        data["models"]["dall-e-3"]["upstream"] = "stability"
        assert locs(invalid(data)) == ["models.gpt-4o.category", "models.dall-e-3.upstream"]


class TestYamlErrors:
    def test_syntax_error_reports_line_and_column(self) -> None:
        text = 'version: "1"\nplans:\n  free\n    rank: 0\n'
        with pytest.raises(CatalogInvalid) as caught:
            load_catalog_text(text)
        [error] = caught.value.errors
        assert error["loc"] == ""
        assert "line 4" in error["msg"]
        assert "YAML syntax error" in error["msg"]

    def test_duplicate_key_is_an_error_with_both_lines(self) -> None:
        text = 'version: "1"\nplans:\n  free: {rank: 0}\n  free: {rank: 1}\n'
        with pytest.raises(CatalogInvalid) as caught:
            load_catalog_text(text)
        assert caught.value.errors == [
            {"loc": "plans.free", "msg": "duplicate key (first defined at line 3)"}
        ]
        assert "(line 4)" in caught.value.detail

    def test_detail_carries_the_line_of_the_offending_key(self) -> None:
        text = 'version: "1"\nplans:\n  free:\n    rank: 0\n    price: lots\n'
        with pytest.raises(CatalogInvalid) as caught:
            load_catalog_text(text, source="mine.yaml")
        expected = "plans.free.price: Input should be a valid decimal (line 5)"
        assert expected in caught.value.detail
        assert "mine.yaml" in caught.value.detail

    def test_empty_document(self) -> None:
        with pytest.raises(CatalogInvalid) as caught:
            load_catalog_text("# nothing\n")
        assert caught.value.errors[0]["msg"] == "the catalog is empty"

    def test_top_level_list(self) -> None:
        with pytest.raises(CatalogInvalid) as caught:
            load_catalog_text("- plans\n")
        assert caught.value.errors[0]["loc"] == ""

    def test_infinite_money_is_rejected(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["plans"]["pro"]["price"] = "PLACEHOLDER"
        text = load_catalog_text.__module__  # keep the import used in type checkers
        del text
        from yaml import safe_dump

        document = safe_dump(data, sort_keys=False).replace("PLACEHOLDER", ".inf")
        with pytest.raises(CatalogInvalid) as caught:
            load_catalog_text(document)
        assert caught.value.errors == [
            {"loc": "plans.pro.price", "msg": "Input should be a finite number"}
        ]


class TestFiles:
    def test_missing_file_is_catalog_invalid(self, tmp_path: Path) -> None:
        path = tmp_path / "nope.yaml"
        with pytest.raises(CatalogInvalid) as caught:
            load_catalog(path)
        assert "file not found" in caught.value.errors[0]["msg"]
        assert str(path) in caught.value.detail

    def test_directory_is_catalog_invalid(self, tmp_path: Path) -> None:
        with pytest.raises(CatalogInvalid):
            load_catalog(tmp_path)

    def test_non_utf8_file_is_catalog_invalid(self, tmp_path: Path) -> None:
        path = tmp_path / "latin1.yaml"
        path.write_bytes(b"version: caf\xe9\n")
        with pytest.raises(CatalogInvalid) as caught:
            load_catalog(path)
        assert "UTF-8" in caught.value.errors[0]["msg"]

    def test_validate_catalog_file_loads_a_valid_file(self, tmp_path: Path) -> None:
        path = tmp_path / "tollhouse.yaml"
        path.write_text("version: 7\nplans:\n  free: {rank: 0}\n", encoding="utf-8")
        catalog = validate_catalog_file(str(path))
        assert catalog.version == "7"
        assert list(catalog.plans) == ["free"]

    def test_date_version_is_kept_as_iso_text(self, tmp_path: Path) -> None:
        path = tmp_path / "tollhouse.yaml"
        path.write_text("version: 2026-03-15\nplans:\n  free: {rank: 0}\n", encoding="utf-8")
        assert validate_catalog_file(path).version == "2026-03-15"


class TestExactNumbers:
    def test_float_looking_yaml_money_converts_exactly(self) -> None:
        text = (
            'version: "1"\n'
            "plans:\n"
            "  free: {rank: 0, price: 0.1, included_credits: 1_000.000001}\n"
            "categories:\n"
            "  text: {requests_per_minute: 1}\n"
            "upstreams:\n"
            "  local: {base_url: 'http://127.0.0.1:8000/v1'}\n"
            "models:\n"
            "  m:\n"
            "    category: text\n"
            "    upstream: local\n"
            "    price: {input_per_1m_tokens: 0.15, per_audio_second: 0.0000111, per_image: 1e-3}\n"
        )
        catalog = load_catalog_text(text)
        plan = catalog.plan("free")
        assert plan.price_micros == 100_000
        assert plan.included_credits_micros == 1_000_000_001
        price = catalog.model("m").price
        assert price.input_per_1m_tokens == Decimal(150_000)
        assert price.per_audio_second == Decimal("11.1")
        assert price.per_image == Decimal(1000)
        assert price.output_per_1m_tokens is None

    def test_python_floats_convert_through_str(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["plans"]["pro"]["price"] = 0.1
        data["models"]["gpt-4o-mini"]["price"]["input_per_1m_tokens"] = 0.15
        catalog = load_catalog_data(data)
        assert catalog.plan("pro").price_micros == 100_000
        assert catalog.model("gpt-4o-mini").price.input_per_1m_tokens == 150_000

    def test_fractional_multiplier_is_exact(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["plans"]["pro"]["rate_limit_multiplier"] = 1.1
        catalog = load_yaml_data(data)
        assert catalog.plan("pro").rate_limit_multiplier == Decimal("1.1")


class TestDefaults:
    def test_missing_meters_key_gives_the_standard_meters(
        self, catalog_data: dict[str, Any]
    ) -> None:
        catalog = load_yaml_data(catalog_data)
        assert list(catalog.meters) == list(STANDARD_METERS)
        assert catalog.meters["storage_bytes"].aggregation == "max"

    def test_explicit_meters_replace_the_standard_set(self, catalog_data: dict[str, Any]) -> None:
        data = catalog_data
        data["meters"] = {"gpu_seconds": {"aggregation": "sum", "unit": "seconds"}}
        assert list(load_yaml_data(data).meters) == ["gpu_seconds"]

    def test_upstream_model_defaults_to_id_and_min_plan_to_default_plan(
        self, catalog_data: dict[str, Any]
    ) -> None:
        model = load_yaml_data(catalog_data).model("dall-e-3")
        assert model.upstream_model == "dall-e-3"
        assert model.min_plan == "free"

    def test_yaml_order_is_kept(self, catalog_data: dict[str, Any]) -> None:
        catalog = load_yaml_data(catalog_data)
        assert list(catalog.models) == ["gpt-4o", "gpt-4o-mini", "dall-e-3"]

    def test_yaml_anchors_and_merge_keys_are_not_duplicates(self) -> None:
        text = (
            'version: "1"\n'
            "plans: {free: {rank: 0}}\n"
            "categories: {text: {requests_per_minute: 5}}\n"
            "upstreams: {local: {base_url: 'http://127.0.0.1:8000/v1'}}\n"
            "models:\n"
            "  a: &base {category: text, upstream: local, price: {input_per_1m_tokens: '0.1'}}\n"
            "  b: {<<: *base, upstream_model: served-b}\n"
        )
        catalog = load_catalog_text(text)
        assert catalog.model("b").price == catalog.model("a").price
        assert catalog.model("b").upstream_model == "served-b"


class TestOnePass:
    """Structural and semantic problems are reported together, whichever comes first."""

    def test_typo_does_not_hide_a_duplicate_rank_or_an_unknown_category(
        self, catalog_data: dict[str, Any]
    ) -> None:
        data = catalog_data
        data["models"]["gpt-4o"]["max_tokenz"] = 100
        data["plans"]["lifetime"]["rank"] = 20
        data["models"]["dall-e-3"]["category"] = "images"

        error = invalid(data)

        assert locs(error) == [
            "plans.lifetime.rank",
            "models.gpt-4o.max_tokenz",
            "models.dall-e-3.category",
        ]
        assert "also used by plan 'pro'" in error.errors[0]["msg"]
        assert "unknown category 'images'" in error.errors[2]["msg"]

    def test_duplicate_key_does_not_hide_schema_or_reference_errors(self) -> None:
        text = (
            'version: "1"\n'
            "plans:\n"
            "  free: {rank: 0}\n"
            "  pro: {rank: 0, price: lots}\n"
            "  pro: {rank: 0, price: lots}\n"
            "categories: {text: {requests_per_minute: 1}}\n"
            "upstreams: {local: {base_url: 'http://127.0.0.1:1/v1'}}\n"
            "models: {m: {category: txt, upstream: local}}\n"
        )

        with pytest.raises(CatalogInvalid) as caught:
            load_catalog_text(text, source="mine.yaml")

        assert locs(caught.value) == [
            "plans.pro.price",
            "plans.pro.rank",
            "plans.pro",
            "models.m.category",
        ]
        assert "(line 8)" in caught.value.detail

    def test_a_value_with_a_schema_error_is_not_also_a_reference_error(
        self, catalog_data: dict[str, Any]
    ) -> None:
        data = catalog_data
        data["models"]["gpt-4o"]["category"] = "Not A Name"

        error = invalid(data)

        assert locs(error) == ["models.gpt-4o.category"]
        assert "pattern" in error.errors[0]["msg"]

    def test_a_section_of_the_wrong_type_is_not_looked_up_in(
        self, catalog_data: dict[str, Any]
    ) -> None:
        data = catalog_data
        data["categories"] = ["text"]
        data["plans"]["pro"]["rank"] = 0

        assert locs(invalid(data)) == ["plans.pro.rank", "categories"]
