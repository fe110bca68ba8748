"""Route kinds per model: its category's and its upstream protocol's, resolved at load time."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tollhouse.catalog import (
    PROTOCOL_ROUTES,
    Catalog,
    CatalogInvalid,
    builtin_catalog,
    load_catalog_text,
    routes_for,
)
from tollhouse.gateway.call import ROUTES

SERVED_KINDS = {route.kind for route in ROUTES}


def loaded(data: dict[str, Any]) -> Catalog:
    return load_catalog_text(yaml.safe_dump(data, sort_keys=False), source="test.yaml")


def with_anthropic(data: dict[str, Any], category: str) -> dict[str, Any]:
    data["upstreams"]["anthropic"] = {
        "base_url": "https://api.anthropic.com",
        "protocol": "anthropic",
    }
    data["models"]["claude"] = {"category": category, "upstream": "anthropic"}
    return data


class TestRoutesFor:
    def test_a_category_allows_its_kinds_of_what_the_protocol_speaks(self) -> None:
        assert routes_for("text", "openai") == {"chat", "completion", "responses"}
        assert routes_for("text", "anthropic") == {"messages"}
        assert routes_for("text-to-speech", "openai") == {"speech"}
        assert routes_for("text-to-speech", "anthropic") == set()

    def test_a_category_not_in_the_table_allows_what_the_protocol_speaks(self) -> None:
        assert routes_for("my-own-category", "openai") == PROTOCOL_ROUTES["openai"]

    def test_a_plain_http_upstream_serves_no_gateway_route(self) -> None:
        assert routes_for("text", "http") == set()


class TestLoader:
    def test_models_carry_their_routes(self, catalog_data: dict[str, Any]) -> None:
        catalog = loaded(with_anthropic(catalog_data, "text"))
        assert catalog.models["gpt-4o"].routes == {"chat", "completion", "responses"}
        assert catalog.models["dall-e-3"].routes == {"image"}
        assert catalog.models["claude"].routes == {"messages"}
        assert catalog.upstreams["anthropic"].protocol == "anthropic"

    def test_a_model_no_route_of_its_upstream_serves_is_refused(
        self, catalog_data: dict[str, Any]
    ) -> None:
        with pytest.raises(CatalogInvalid) as caught:
            loaded(with_anthropic(catalog_data, "text-to-image"))
        [problem] = caught.value.errors
        assert problem["loc"] == "models.claude.upstream"
        assert "speaks 'anthropic'" in problem["msg"]


class TestBuiltinCatalog:
    def test_every_model_is_served_on_a_gateway_route_or_metered_by_the_sidecar(self) -> None:
        """A built-in model is reachable: some route of the gateway serves it, or its upstream
        is a plain HTTP endpoint that the application calls, metering it with the sidecar."""
        catalog = builtin_catalog()
        for model in catalog.models.values():
            protocol = catalog.upstreams[model.upstream].protocol
            if protocol == "http":
                assert model.routes == set(), model.id
            else:
                assert model.routes & SERVED_KINDS, model.id

    def test_claude_is_served_on_messages(self) -> None:
        catalog = builtin_catalog()
        claude = catalog.models["claude-sonnet-4-5"]
        assert claude.routes == {"messages"}
        assert catalog.upstreams[claude.upstream].base_url == "https://api.anthropic.com"
