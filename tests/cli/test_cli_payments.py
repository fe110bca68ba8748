"""`tollhouse packs ...` and `tollhouse payments ...` on a SQLite file: an operator lists the
packs, records a customer's bank transfer for `pack-50` ($55 in the wallet), replays it with
the same key (nothing more), records an amount, refunds part of it; Stripe's verbs say what
to set without Stripe, and with it `packs buy --checkout` prints the Checkout URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.background import in_background
from tests.support.catalog import PACK_50_BONUS_MICROS, PACK_50_MICROS
from tests.support.cli import Cli
from tests.support.stripe import API_KEY, WEBHOOK_SECRET, FakeStripe


class _Served:
    def __init__(self) -> None:
        self.server = FakeStripe()

    async def __aenter__(self) -> FakeStripe:
        await self.server.start()
        return self.server

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()


@pytest.fixture
def stripe_server() -> Iterator[FakeStripe]:
    """The local Stripe server on its own loop (the CLI runs its own)."""
    with in_background(_Served) as server:
        yield server


def test_packs_list_shows_prices_and_bonuses(migrated: Cli) -> None:
    packs = {p["name"]: p for p in migrated.json("packs", "list")}
    assert (packs["pack-50"]["price_micros"], packs["pack-50"]["bonus_micros"]) == (
        PACK_50_MICROS,
        PACK_50_BONUS_MICROS,
    )
    assert packs["pack-50"]["bonus_expiry_days"] == 90
    assert "pack-10" in migrated.ok("packs", "list").stdout


def test_a_manual_pack_payment_credits_once_and_refunds(migrated: Cli) -> None:
    customer = migrated.customer()
    args = ("packs", "buy", customer, "pack-50", "--description", "wire 118")
    paid = migrated.json(*args, "--idempotency-key", "w1")
    again = migrated.json(*args, "--idempotency-key", "w1")
    assert (paid["provider"], paid["status"], paid["replayed"]) == ("manual", "succeeded", False)
    assert (again["id"], again["replayed"]) == (paid["id"], True)
    balance = migrated.json("credits", "balance", customer)
    assert balance["available_micros"] == PACK_50_MICROS + PACK_50_BONUS_MICROS

    amount = migrated.json("payments", "record", customer, "--amount", "2.50")
    assert (amount["kind"], amount["credits_micros"]) == ("credits", 2_500_000)
    listed = migrated.json("payments", "list", "--customer", customer)
    assert [p["id"] for p in listed] == [amount["id"], paid["id"]]

    refunded = migrated.json("payments", "refund", amount["id"], "--amount", "1.00")
    assert [r["credits_reversed_micros"] for r in refunded["refunds"]] == [1_000_000]
    shown = migrated.json("payments", "show", amount["id"])
    assert shown["refunded_micros"] == 1_000_000
    assert "refunded_micros" in migrated.ok("payments", "show", amount["id"]).stdout

    bad = migrated.invoke("payments", "record", customer, "--amount", "0.0000001")
    assert bad.exit_code == 1 and "invalid-input" in bad.stderr
    missing = migrated.invoke("packs", "buy", customer, "nope")
    assert missing.exit_code == 1 and "credit-pack-not-found" in missing.stderr


def test_stripe_verbs_without_stripe_say_what_to_set(migrated: Cli) -> None:
    customer = migrated.customer()
    checkout = migrated.invoke(
        "packs", "buy", customer, "pack-10", "--checkout", "--success-url", "https://x.example/"
    )
    assert checkout.exit_code == 1
    assert "payments-not-configured" in checkout.stderr
    assert "TOLLHOUSE_STRIPE_API_KEY" in checkout.stderr
    top_up = migrated.invoke(
        "payments", "auto-top-up", customer, "--threshold", "5", "--pack", "pack-10"
    )
    assert top_up.exit_code == 1 and "payments-not-configured" in top_up.stderr


def test_packs_buy_checkout_prints_the_stripe_url(
    migrated: Cli, stripe_server: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLHOUSE_STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("TOLLHOUSE_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("TOLLHOUSE_STRIPE_API_BASE", stripe_server.base_url)
    customer = migrated.customer()

    opened = migrated.json(
        "packs", "buy", customer, "pack-50", "--checkout", "--success-url", "https://x.example/"
    )

    assert opened["url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    assert (opened["kind"], opened["price_micros"]) == ("credit_pack", PACK_50_MICROS)
    refused = migrated.invoke(
        "payments", "auto-top-up", customer, "--threshold", "5", "--pack", "pack-10"
    )
    assert refused.exit_code == 1 and "payment-method-required" in refused.stderr
