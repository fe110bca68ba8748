"""Catalog fixtures: a small valid catalog as data (`catalog_data`) and loaded (`small`)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tollhouse.catalog import Catalog, load_catalog_text

SMALL_CATALOG: dict[str, Any] = {
    "version": "1",
    "currency": "usd",
    "default_plan": "free",
    "plans": {
        "free": {"rank": 0, "price": "0", "rate_limit_multiplier": 1},
        "pro": {"rank": 20, "price": "29.00", "rate_limit_multiplier": "2.5"},
        "lifetime": {"rank": 30, "price": "999", "interval": "once", "rate_limit_multiplier": None},
    },
    "categories": {
        "text": {"requests_per_minute": 40, "tokens_per_minute": 40000},
        "text-to-image": {"requests_per_minute": 10},
    },
    "upstreams": {
        "openai": {"base_url": "https://api.openai.com/v1", "api_key_env": "TH_TEST_OPENAI_KEY"},
        "local": {"base_url": "http://127.0.0.1:8000/v1"},
    },
    "models": {
        "gpt-4o": {
            "category": "text",
            "upstream": "openai",
            "price": {"input_per_1m_tokens": "2.50", "output_per_1m_tokens": "10.00"},
            "min_plan": "pro",
            "max_output_tokens": 16384,
        },
        "gpt-4o-mini": {
            "category": "text",
            "upstream": "openai",
            "price": {"input_per_1m_tokens": "0.15", "output_per_1m_tokens": "0.60"},
        },
        "dall-e-3": {
            "category": "text-to-image",
            "upstream": "openai",
            "price": {"per_image": "0.04"},
        },
    },
}


@pytest.fixture
def catalog_data() -> dict[str, Any]:
    """A deep copy of `SMALL_CATALOG`, free to mutate."""
    return copy.deepcopy(SMALL_CATALOG)


@pytest.fixture
def small(catalog_data: dict[str, Any]) -> Catalog:
    """`SMALL_CATALOG` loaded through YAML text."""
    return load_catalog_text(yaml.safe_dump(catalog_data, sort_keys=False), source="test.yaml")
