"""`credit_packs`: prices in whole cents, credits defaulting to the price, an expiring bonus;
the built-in catalog's packs, and the starter catalog's commented block."""

from __future__ import annotations

import pytest

from tollhouse.catalog import (
    CatalogInvalid,
    CreditPack,
    CreditPackNotFound,
    builtin_catalog,
    load_catalog_text,
    preset_text,
)

BASE = """
version: "packs"
currency: {currency}
plans: {{free: {{rank: 0}}}}
credit_packs:
{packs}
"""


def load(packs: str, currency: str = "usd") -> dict[str, CreditPack]:
    return dict(load_catalog_text(BASE.format(packs=packs, currency=currency)).credit_packs)


def problems(packs: str, currency: str = "usd") -> list[dict[str, str]]:
    with pytest.raises(CatalogInvalid) as raised:
        load(packs, currency)
    return list(raised.value.extra["errors"])


class TestCreditPacks:
    def test_a_pack_converts_dollars_to_micros(self) -> None:
        packs = load(
            '  big: {price: "50.00", bonus: "5.00", bonus_expiry_days: 90, description: "x"}'
        )
        assert packs["big"] == CreditPack(
            name="big",
            price_micros=50_000_000,
            credits_micros=50_000_000,
            bonus_micros=5_000_000,
            bonus_expiry_days=90,
            description="x",
        )
        assert packs["big"].total_micros == 55_000_000

    def test_credits_default_to_the_price_and_may_differ(self) -> None:
        packs = load('  a: {price: "10"}\n  b: {price: "9.99", credits: "12.00"}')
        assert (packs["a"].credits_micros, packs["a"].bonus_micros) == (10_000_000, 0)
        assert packs["a"].bonus_expiry_days is None
        assert packs["b"].credits_micros == 12_000_000

    def test_a_price_finer_than_a_cent_is_refused_with_its_path(self) -> None:
        [problem] = problems('  a: {price: "10.005"}')
        assert problem["loc"] == "credit_packs.a.price"
        assert "minor units" in problem["msg"]

    def test_a_zero_decimal_currency_needs_whole_units(self) -> None:
        assert load('  a: {price: "1000"}', currency="jpy")["a"].price_micros == 10**9
        [problem] = problems('  a: {price: "1000.50"}', currency="jpy")
        assert problem["loc"] == "credit_packs.a.price"

    @pytest.mark.parametrize(
        ("pack", "loc"),
        [
            ('{price: "0"}', "credit_packs.a.price"),
            ('{price: "1", credits: "0"}', "credit_packs.a.credits"),
            ('{price: "1", bonus: "-1"}', "credit_packs.a.bonus"),
            ('{price: "1", bonus_expiry_days: 0}', "credit_packs.a.bonus_expiry_days"),
            ('{price: "1", bonus_expiry_days: "9"}', "credit_packs.a.bonus_expiry_days"),
            ('{price: "1", surprise: 1}', "credit_packs.a.surprise"),
        ],
    )
    def test_invalid_fields_are_named(self, pack: str, loc: str) -> None:
        assert [p["loc"] for p in problems(f"  a: {pack}")] == [loc]

    def test_an_unknown_pack_is_not_found(self) -> None:
        catalog = load_catalog_text(BASE.format(packs="  a: {price: '1'}", currency="usd"))
        with pytest.raises(CreditPackNotFound) as raised:
            catalog.credit_pack("nope")
        assert raised.value.extra == {"pack": "nope"}
        assert catalog.credit_pack("a").price_micros == 1_000_000


class TestShippedCatalogs:
    def test_the_builtin_packs_give_the_documented_bonuses(self) -> None:
        packs = builtin_catalog().credit_packs
        assert {name: (p.price_micros, p.total_micros) for name, p in packs.items()} == {
            "pack-10": (10_000_000, 10_000_000),
            "pack-50": (50_000_000, 55_000_000),
            "pack-100": (100_000_000, 115_000_000),
        }

    def test_the_default_preset_sells_two(self) -> None:
        packs = load_catalog_text(preset_text()).credit_packs
        assert packs["pack-50"].total_micros == 55_000_000
        assert packs["pack-10"].credits_micros == 10_000_000
