"""Fallback upstreams in the catalog: the YAML forms, their checks, and the attempt order."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
import yaml

from tollhouse.catalog import (
    Catalog,
    CatalogInvalid,
    ModelUpstream,
    attempt_order,
    load_catalog_text,
)

DRAWS = 4000


def load(data: dict[str, Any]) -> Catalog:
    return load_catalog_text(yaml.safe_dump(data, sort_keys=False), source="test.yaml")


def errors(data: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(CatalogInvalid) as caught:
        load(data)
    return caught.value.errors


@pytest.fixture
def data(catalog_data: dict[str, Any]) -> dict[str, Any]:
    """The small catalog with a third upstream and `gpt-4o-mini` served by three."""
    catalog_data["upstreams"]["azure"] = {"base_url": "https://azure.invalid/v1"}
    mini = catalog_data["models"]["gpt-4o-mini"]
    del mini["upstream"]
    mini["upstreams"] = [
        {"upstream": "openai", "weight": 3},
        {"upstream": "local", "model": "llama-3.1-8b", "priority": 2, "timeout_seconds": 2.5},
        {"upstream": "azure", "model": "mini-eu"},
    ]
    return catalog_data


class TestForms:
    def test_one_upstream_is_one_entry_with_the_upstream_model(self, small: Catalog) -> None:
        model = small.model("gpt-4o")
        assert model.upstreams == (ModelUpstream("openai", "gpt-4o"),)

    def test_entries_are_sorted_by_priority_with_their_defaults(self, data: dict[str, Any]) -> None:
        model = load(data).model("gpt-4o-mini")
        assert model.upstreams == (
            ModelUpstream("openai", "gpt-4o-mini", weight=3),
            ModelUpstream("azure", "mini-eu"),
            ModelUpstream("local", "llama-3.1-8b", priority=2, timeout_seconds=2.5),
        )

    def test_the_first_listed_is_the_models_upstream(self, data: dict[str, Any]) -> None:
        data["models"]["gpt-4o-mini"]["upstreams"][0]["priority"] = 3
        model = load(data).model("gpt-4o-mini")
        assert (model.upstream, model.upstream_model) == ("openai", "gpt-4o-mini")
        assert model.upstreams[-1].upstream == "openai"

    def test_upstream_model_is_the_default_of_every_entry(self, data: dict[str, Any]) -> None:
        data["models"]["gpt-4o-mini"]["upstream_model"] = "gpt-4o-mini-2024-07-18"
        model = load(data).model("gpt-4o-mini")
        assert [entry.model for entry in model.upstreams] == [
            "gpt-4o-mini-2024-07-18",
            "mini-eu",
            "llama-3.1-8b",
        ]


class TestErrors:
    def test_upstream_and_upstreams_together(self, data: dict[str, Any]) -> None:
        data["models"]["gpt-4o-mini"]["upstream"] = "openai"
        assert errors(data) == [
            {
                "loc": "models.gpt-4o-mini.upstreams",
                "msg": "give either 'upstream' or 'upstreams', not both",
            }
        ]

    def test_neither_upstream_nor_upstreams(self, data: dict[str, Any]) -> None:
        del data["models"]["gpt-4o-mini"]["upstreams"]
        assert errors(data) == [
            {
                "loc": "models.gpt-4o-mini",
                "msg": "needs 'upstream' (one upstream) or 'upstreams' (fallback upstreams)",
            }
        ]

    def test_unknown_upstream_in_an_entry(self, data: dict[str, Any]) -> None:
        data["models"]["gpt-4o-mini"]["upstreams"][2]["upstream"] = "together"
        assert errors(data) == [
            {
                "loc": "models.gpt-4o-mini.upstreams.2.upstream",
                "msg": "unknown upstream 'together' (known: azure, local, openai)",
            }
        ]

    def test_same_upstream_and_model_twice(self, data: dict[str, Any]) -> None:
        data["models"]["gpt-4o-mini"]["upstreams"].append(
            {"upstream": "openai", "model": "gpt-4o-mini", "priority": 5}
        )
        assert errors(data) == [
            {
                "loc": "models.gpt-4o-mini.upstreams.3",
                "msg": "upstream 'openai' with model 'gpt-4o-mini' is listed twice (entry 0)",
            }
        ]

    def test_one_upstream_under_two_model_names_is_allowed(self, data: dict[str, Any]) -> None:
        data["models"]["gpt-4o-mini"]["upstreams"].append(
            {"upstream": "openai", "model": "gpt-4.1-mini", "priority": 5}
        )
        assert len(load(data).model("gpt-4o-mini").upstreams) == 4

    def test_upstreams_of_another_protocol(self, data: dict[str, Any]) -> None:
        data["upstreams"]["azure"]["protocol"] = "http"
        assert errors(data) == [
            {
                "loc": "models.gpt-4o-mini.upstreams.2.upstream",
                "msg": "upstream 'azure' speaks 'http' but 'openai' (the first) speaks "
                "'openai': a model's upstreams must speak one protocol",
            }
        ]

    def test_empty_list(self, data: dict[str, Any]) -> None:
        data["models"]["gpt-4o-mini"]["upstreams"] = []
        assert [e["loc"] for e in errors(data)] == ["models.gpt-4o-mini.upstreams"]

    @pytest.mark.parametrize(
        ("field", "value"),
        [("weight", 0), ("weight", 1.5), ("priority", 0), ("timeout_seconds", 0), ("x", 1)],
    )
    def test_bad_entry_field(self, data: dict[str, Any], field: str, value: Any) -> None:
        data["models"]["gpt-4o-mini"]["upstreams"][0][field] = value
        assert [e["loc"] for e in errors(data)] == [f"models.gpt-4o-mini.upstreams.0.{field}"]


def first_choices(entries: tuple[ModelUpstream, ...], seed: int) -> Counter[str]:
    rng = random.Random(seed)
    return Counter(attempt_order(entries, rng)[0].model for _ in range(DRAWS))


class TestAttemptOrder:
    def test_one_entry_is_returned_as_is(self) -> None:
        entries = (ModelUpstream("openai", "gpt-4o"),)
        assert attempt_order(entries) is entries

    def test_every_entry_is_tried_once_priority_groups_in_order(self) -> None:
        entries = (
            ModelUpstream("a", "a1", weight=5),
            ModelUpstream("b", "b1"),
            ModelUpstream("c", "c2", priority=2),
            ModelUpstream("d", "d2", priority=2, weight=9),
            ModelUpstream("e", "e7", priority=7),
        )
        rng = random.Random(7)
        for _ in range(200):
            order = [entry.model for entry in attempt_order(entries, rng)]
            assert sorted(order[:2]) == ["a1", "b1"]
            assert sorted(order[2:4]) == ["c2", "d2"]
            assert order[4] == "e7"

    def test_weights_share_the_first_attempt(self) -> None:
        entries = (ModelUpstream("a", "heavy", weight=3), ModelUpstream("b", "light"))
        counts = first_choices(entries, seed=20)
        assert 0.70 * DRAWS < counts["heavy"] < 0.80 * DRAWS
        assert counts["heavy"] + counts["light"] == DRAWS

    def test_equal_weights_share_evenly(self) -> None:
        entries = tuple(ModelUpstream(name, name) for name in "abc")
        counts = first_choices(entries, seed=5)
        assert all(0.28 * DRAWS < counts[name] < 0.39 * DRAWS for name in "abc")

    def test_the_same_seed_gives_the_same_orders(self) -> None:
        entries = tuple(ModelUpstream(name, name, weight=i + 1) for i, name in enumerate("abcd"))
        first = [attempt_order(entries, random.Random(3)) for _ in range(5)]
        assert first == [attempt_order(entries, random.Random(3)) for _ in range(5)]
