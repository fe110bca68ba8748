"""Invoices and refunds over HTTP, on SQLite and PostgreSQL, with the server's clock frozen.

Story: an operator creates a German customer on the pro plan ($29.00 a month, 19 % tax) and
closes the periods: its first invoice bills the month's fee and its tax, numbered TH-000001.
The customer spends a session from its wallet; a month later the server's sweep closes the
period, and the next invoice lists the session, nets it as paid from credits, and bills the
next fee. The invoice reads as JSON, as an HTML page and as a PDF whose text has its number
and total; the operator records its payment. Each
customer sees only its own invoices: another's answers 404. The operator refunds the
session's fee: the credits come back and a credit note CN-000001 documents it.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pypdf
import pytest
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import Stack, running_stack
from tests.support.catalog import PACK_50_MICROS, SESSION_PRICE_MICROS
from tests.support.server import Api
from tests.support.upstream import FakeUpstream

from tollhouse.clock import FrozenClock

PRO_MICROS = 29_000_000
PRO_TAX_MICROS = 5_510_000
"""19 % of $29.00."""
IMAGING_MICROS = 500_000
APRIL_15 = datetime(2026, 4, 15, tzinfo=UTC)
PROBLEM = "application/problem+json"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 15, 12, 0, tzinfo=UTC))


@pytest.fixture(params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    upstream: FakeUpstream,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Stack]:
    monkeypatch.setenv("TOLLHOUSE_TAX_RATES", '{"DE": "0.19"}')
    monkeypatch.setenv("TOLLHOUSE_INVOICE_ISSUER", "Tollhouse Test GmbH")
    url = None if request.param == "sqlite" else await create_postgres_database()
    try:
        async with running_stack(tmp_path, upstream, database_url=url, clock=clock) as running:
            yield running
    finally:
        if url is not None:
            await drop_postgres_database(url)


async def german(stack: Stack, plan: str = "pro") -> tuple[str, str]:
    """A customer in Germany with $10 of credits; (id, key)."""
    customer, key = await stack.customer(plan=plan, credits_micros=10_000_000)
    patched = await stack.operator.ok("PATCH", f"/v1/customers/{customer}", json={"country": "DE"})
    assert patched["country"] == "DE"
    return customer, key


def lines(invoice: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(li["kind"], li["quantity"], li["amount_micros"]) for li in invoice["lines"]]


async def test_a_period_close_bills_renders_and_is_paid(stack: Stack, clock: FrozenClock) -> None:
    customer, key = await german(stack)
    closed = await stack.operator.ok("POST", "/v1/billing/close")
    async with Api(stack.base_url, key) as own:
        (first,) = await own.ok("GET", "/v1/invoices")
        await own.ok("POST", "/v1/sessions", json={"product": "imaging", "idempotency_key": "s-1"})
        clock.set(APRIL_15)
        await stack.runtime.sweep()  # the server's 30 s job closes periods too
        second, _ = await own.ok("GET", "/v1/invoices")
        page = await own.client.get(f"/v1/invoices/{second['id']}.html")
        pdf = await own.client.get(f"/v1/invoices/{second['id']}.pdf")
        paid = await stack.operator.ok(
            "POST", f"/v1/invoices/{second['id']}/pay", json={"payment_reference": "wire-42"}
        )
        shown = await own.ok("GET", f"/v1/invoices/{second['id']}")
        events = await own.ok("GET", "/v1/events", params={"type": "invoice.paid"})

    assert closed["invoices_finalized"] == ["TH-000001"]
    assert (first["number"], first["status"], first["customer_id"]) == (
        "TH-000001",
        "open",
        customer,
    )
    assert lines(first) == [
        ("subscription_fee", 1, PRO_MICROS),
        ("tax", 1, PRO_TAX_MICROS),
    ]
    assert first["total_micros"] == PRO_MICROS + PRO_TAX_MICROS == 34_510_000
    assert lines(second) == [
        ("subscription_fee", 1, PRO_MICROS),
        ("session_fee", 1, IMAGING_MICROS),
        ("credits_applied", 1, -IMAGING_MICROS),
        ("tax", 1, PRO_TAX_MICROS),
    ]
    assert second["number"] == "TH-000002"
    assert second["total_micros"] == sum(li["amount_micros"] for li in second["lines"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "TH-000002" in page.text and "Tollhouse Test GmbH" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    assert "TH-000002" in text and "34.51 USD" in text
    assert (paid["status"], paid["payment_reference"]) == ("paid", "wire-42")
    assert shown["status"] == "paid"
    assert [e["data"]["number"] for e in events["data"]] == ["TH-000002"]


async def test_a_customer_sees_only_its_own_invoices(stack: Stack) -> None:
    owner, owner_key = await german(stack)
    other, _ = await german(stack)
    await stack.operator.ok("POST", "/v1/billing/close")
    everyone = await stack.operator.ok("GET", "/v1/invoices")
    filtered = await stack.operator.ok("GET", "/v1/invoices", params={"customer_id": other})
    (theirs,) = filtered
    async with Api(stack.base_url, owner_key) as own:
        mine = await own.ok("GET", "/v1/invoices")
        answers = [
            await own.client.get(f"/v1/invoices/{theirs['id']}{suffix}")
            for suffix in ("", ".html", ".pdf")
        ]
        named = await own.client.get("/v1/invoices", params={"customer_id": other})
        paying = await own.client.post(f"/v1/invoices/{mine[0]['id']}/pay")

    assert {i["customer_id"] for i in everyone} == {owner, other}
    assert [i["customer_id"] for i in mine] == [owner]
    for answer in [*answers, named]:
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"].startswith(PROBLEM)
    assert answers[0].json()["type"].endswith("/invoice-not-found")
    assert paying.status_code == 403


async def test_a_refund_gives_the_fee_back_with_a_credit_note(stack: Stack) -> None:
    customer, key = await german(stack, plan="free")
    async with Api(stack.base_url, key) as own:
        session = await own.ok(
            "POST", "/v1/sessions", json={"product": "analysis", "idempotency_key": "s-1"}
        )
        before = await stack.available(customer)
        body = {"hold_id": session["hold_id"], "reason": "outage", "idempotency_key": "rf-1"}
        refused = await own.client.post("/v1/refunds", json=body)
        created = await stack.operator.client.post("/v1/refunds", json=body)
        replayed = await stack.operator.client.post("/v1/refunds", json=body)
        again = await stack.operator.client.post(
            "/v1/refunds", json={**body, "idempotency_key": "rf-2"}
        )
        notes = await own.ok("GET", "/v1/invoices", params={"kind": "credit_note"})

    assert refused.status_code == 403
    assert (created.status_code, replayed.status_code) == (201, 200)
    refund = created.json()
    assert replayed.json()["id"] == refund["id"]
    assert (refund["status"], refund["amount_micros"]) == ("succeeded", SESSION_PRICE_MICROS)
    note = refund["credit_note"]
    assert (note["number"], note["kind"], note["total_micros"]) == (
        "CN-000001",
        "credit_note",
        -SESSION_PRICE_MICROS,
    )
    assert [n["id"] for n in notes] == [note["id"]]
    assert again.status_code == 409
    assert again.json()["type"].endswith("/refund-exceeds-charge")
    assert await stack.available(customer) == before + SESSION_PRICE_MICROS


async def test_credits_bought_are_listed_and_a_payment_refund_gets_a_credit_note(
    stack: Stack, clock: FrozenClock
) -> None:
    customer, key = await german(stack)
    await stack.operator.ok("POST", "/v1/billing/close")  # the first fee, TH-000001
    paid = await stack.operator.ok(
        "POST", "/v1/payments",
        json={"customer_id": customer, "pack": "pack-50", "idempotency_key": "wire-1"},
    )  # fmt: skip
    clock.set(APRIL_15)
    await stack.runtime.sweep()
    refund = {"amount_micros": 20_000_000, "idempotency_key": "rf-1"}
    url = f"/v1/payments/{paid['id']}/refund"
    await stack.operator.ok("POST", url, json=refund)
    await stack.operator.ok("POST", url, json=refund)  # the same step: one note
    await stack.runtime.sweep()  # the sweep finds it documented
    async with Api(stack.base_url, key) as own:
        second, _ = await own.ok("GET", "/v1/invoices", params={"kind": "invoice"})
        notes = await own.ok("GET", "/v1/invoices", params={"kind": "credit_note"})

    assert lines(second) == [
        ("subscription_fee", 1, PRO_MICROS),
        ("credit_purchase", 1, PACK_50_MICROS),
        ("payment_applied", 1, -PACK_50_MICROS),
        ("tax", 1, PRO_TAX_MICROS),  # the credits were paid when bought: not taxed again
    ]
    assert second["total_micros"] == PRO_MICROS + PRO_TAX_MICROS
    (note,) = notes
    assert (note["number"], note["status"], note["total_micros"]) == (
        "CN-000001",
        "paid",
        -20_000_000,
    )
    assert note["credited_invoice_id"] == second["id"]
    assert note["lines"][0]["kind"] == "refund" and paid["id"] in note["lines"][0]["description"]
