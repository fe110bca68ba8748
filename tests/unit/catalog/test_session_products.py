"""Session products in the catalog: dollars to micros, and every problem in one pass."""

from __future__ import annotations

import pytest

from tollhouse.catalog import CatalogInvalid, SessionProductNotFound, load_catalog_text
from tollhouse.errors import InvalidInput

BASE = """
version: "1"
plans: {free: {rank: 0}}
categories: {text: {requests_per_minute: 10}}
upstreams: {up: {base_url: "http://127.0.0.1:9"}}
models: {chat: {category: text, upstream: up}, other: {category: text, upstream: up}}
"""


def test_a_product_loads_in_micros_and_covers_its_models_and_categories() -> None:
    catalog = load_catalog_text(
        BASE
        + """
session_products:
  day:
    price: "1.00"
    duration: 86400
    max_tokens: 100000
    models: [chat]
    required: true
    packs: [{sessions: 5, price: "4.50"}, {sessions: 20, price: 16}]
  text: {price: "0.25", duration: 60, categories: [text]}
"""
    )
    day = catalog.session_product("day")
    assert (day.price_micros, day.duration_seconds, day.max_tokens) == (1_000_000, 86_400, 100_000)
    assert day.required is True
    assert [(p.sessions, p.price_micros) for p in day.packs] == [(5, 4_500_000), (20, 16_000_000)]
    assert day.pack(20).price_micros == 16_000_000
    assert day.covers(catalog.model("chat")) and not day.covers(catalog.model("other"))
    text = catalog.session_product("text")
    assert text.max_tokens is None and text.required is False
    assert text.covers(catalog.model("other"))
    with pytest.raises(InvalidInput, match="no pack of 3"):
        day.pack(3)
    with pytest.raises(SessionProductNotFound) as missing:
        catalog.session_product("week")
    assert missing.value.extra["known"] == ["day", "text"]


def test_every_problem_of_session_products_is_reported_in_one_pass() -> None:
    with pytest.raises(CatalogInvalid) as raised:
        load_catalog_text(
            BASE
            + """
session_products:
  empty: {price: "1.00", duration: 60}
  typo:
    price: "1.0000001"
    duration: 0
    models: [chat, nope]
    categories: [images]
    packs: [{sessions: 5, price: "4"}, {sessions: 5, price: "3"}]
    colour: red
"""
        )
    locs = {error["loc"]: error["msg"] for error in raised.value.errors}
    assert set(locs) == {
        "session_products.empty",
        "session_products.typo.price",
        "session_products.typo.duration",
        "session_products.typo.models.1",
        "session_products.typo.categories.0",
        "session_products.typo.packs.1.sessions",
        "session_products.typo.colour",
    }
    assert "at least one model or category" in locs["session_products.empty"]
    assert "unknown model 'nope'" in locs["session_products.typo.models.1"]
    assert "listed twice" in locs["session_products.typo.packs.1.sessions"]
