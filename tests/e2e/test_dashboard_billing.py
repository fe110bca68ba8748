"""The portal's billing pages over HTTP.

Story: a customer's admin opens Billing. Without a payment provider the page says that an
operator grants credits and offers no card button; a paid plan is refused with that
message, a free one is changed at once and the API reads the new plan. Session packs are
bought from the wallet, once per form. The ledger's entries are listed with filters (kind,
days in the user's time zone), paged, and exported as exact CSV. The invoices a period close
wrote read as an HTML document and as a real PDF; another customer's answer 404. A `member`
sees all this and may post nothing. With Stripe configured (the local Stripe server), a credit
pack, a session pack paid by card and a paid plan go to Stripe Checkout (303).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pypdf
import pytest
from tests.e2e.conftest import Stack, running_stack
from tests.e2e.test_dashboard import CSRF, PASSWORD, Browser, add_user
from tests.support.catalog import SESSION_PACK_5_MICROS
from tests.support.stripe import API_KEY, WEBHOOK_SECRET, FakeStripe
from tests.support.upstream import FakeUpstream

from tollhouse.billing import PAGE_POLICY
from tollhouse.dashboard import billing as billing_pages
from tollhouse.money import to_micros
from tollhouse.users import Role
from tollhouse.users import service as users

BILLING = "/dashboard/portal/billing"
TOKYO = "Asia/Tokyo"
KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        yield client


async def signed_in(
    stack: Stack, http: httpx.AsyncClient, role: Role = Role.ADMIN, *, plan: str = "free",
    credits_micros: int = 1_000_000,
) -> tuple[Browser, str]:  # fmt: skip
    """A new customer on `plan` with `credits_micros`, and a user of it in `role`, signed
    in: (its browser, the customer's id)."""
    customer_id, _ = await stack.customer(plan=plan, credits_micros=credits_micros)
    email = f"{role.value}-{customer_id}@example.com".lower()
    await add_user(stack, email, role, customer_id)
    browser = Browser(http)
    assert (await browser.sign_in(email)).status_code == 303
    return browser, customer_id


async def form(browser: Browser, action: str) -> dict[str, str]:
    """The hidden fields of the billing page's first form posting to `action`."""
    page = await browser.request("GET", BILLING)
    assert page.status_code == 200, page.text
    found = re.search(rf'action="{re.escape(action)}".*?</form>', page.text, re.S)
    assert found is not None, f"no form for {action}"
    fields = re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', found.group(0))
    return dict(fields)


async def plan_of(stack: Stack, customer_id: str) -> str:
    shown = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/subscription")
    return str(shown["plan"])


async def test_without_a_provider_the_page_says_so_and_paid_items_are_refused(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    browser, customer_id = await signed_in(stack, http)
    page = await browser.request("GET", BILLING)
    token = CSRF.search(page.text)
    assert token is not None
    pack = await browser.request(
        "POST", f"{BILLING}/credit-pack",
        data={"csrf_token": token.group(1), "pack": "pack-10", "idempotency_key": "k1"},
    )  # fmt: skip
    pro = await browser.request(
        "POST", f"{BILLING}/plan",
        data={"csrf_token": token.group(1), "plan": "pro", "idempotency_key": "k2"},
    )  # fmt: skip

    assert page.status_code == 200
    assert 'id="no-provider"' in page.text and "an operator grants credits" in page.text
    assert "Pay by card" not in page.text and "Buy credit pack" not in page.text
    assert "Change to pro" not in page.text and "Change to capped" in page.text
    assert "29.00 USD" in page.text and "per month" in page.text  # pro, listed with its price
    assert pack.status_code == 503 and "an operator grants credits" in pack.text
    assert pro.status_code == 402 and "an operator grants credits" in pro.text
    assert await plan_of(stack, customer_id) == "free"


async def test_a_plan_changed_on_the_page_is_the_apis_plan(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    browser, customer_id = await signed_in(stack, http)
    fields = await form(browser, f"{BILLING}/plan")
    assert fields["plan"] == "capped"  # the first plan offered: free is the current one
    changed = await browser.request("POST", f"{BILLING}/plan", data=fields)
    shown = await browser.request("GET", changed.headers["location"])
    unknown = await browser.request("POST", f"{BILLING}/plan", data={**fields, "plan": "nope"})

    assert (changed.status_code, changed.headers["location"]) == (303, f"{BILLING}?done=plan")
    assert "Plan changed" in shown.text and 'id="plan">capped<' in shown.text
    assert await plan_of(stack, customer_id) == "capped"
    assert unknown.status_code == 404 and "nope" in unknown.text


async def test_a_session_pack_is_bought_from_the_wallet_once_per_form(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    browser, customer_id = await signed_in(stack, http)
    await stack.operator.ok(
        "POST", f"/v1/customers/{customer_id}/credits/grants",
        json={"amount_micros": 4_000_000, "idempotency_key": "top"},
    )  # fmt: skip
    fields = await form(browser, f"{BILLING}/session-pack")
    assert (fields["product"], fields["sessions"]) == ("analysis", "5")
    first = await browser.request(
        "POST", f"{BILLING}/session-pack", data={**fields, "pay": "wallet"}
    )
    again = await browser.request(
        "POST", f"{BILLING}/session-pack", data={**fields, "pay": "wallet"}
    )
    card = await browser.request("POST", f"{BILLING}/session-pack", data={**fields, "pay": "card"})
    broke = await browser.request(
        "POST", f"{BILLING}/session-pack", data={**fields, "pay": "wallet", "idempotency_key": "k3"}
    )
    quota = await stack.operator.ok(
        "GET", "/v1/sessions/quota", params={"customer_id": customer_id}
    )

    assert (first.status_code, again.status_code) == (303, 303)
    assert card.status_code == 503  # no provider: no card
    assert broke.status_code == 402
    assert await stack.available(customer_id) == 5_000_000 - SESSION_PACK_5_MICROS
    assert {p["product"]: p["sessions_left"] for p in quota["products"]}["analysis"] == 5


async def test_a_member_sees_billing_but_cannot_buy_or_change_the_plan(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    member, customer_id = await signed_in(stack, http, Role.MEMBER, credits_micros=10_000_000)
    page = await member.request("GET", BILLING)
    token = CSRF.search(page.text)
    assert token is not None
    plan = await member.request(
        "POST", f"{BILLING}/plan", data={"csrf_token": token.group(1), "plan": "capped"}
    )
    pack = await member.request(
        "POST", f"{BILLING}/session-pack",
        data={"csrf_token": token.group(1), "product": "analysis", "sessions": "5",
              "pay": "wallet", "idempotency_key": "m1"},
    )  # fmt: skip

    assert page.status_code == 200 and "Only an admin" in page.text
    assert "Change to" not in page.text and "Pay from wallet" not in page.text
    assert (plan.status_code, pack.status_code) == (403, 403)
    assert await plan_of(stack, customer_id) == "free"
    assert await stack.available(customer_id) == 10_000_000


async def test_invoices_read_as_html_and_pdf_and_another_customers_are_404(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    browser, _ = await signed_in(stack, http, plan="pro")
    other_id, _ = await stack.customer(plan="pro")
    closed = await stack.operator.ok("POST", "/v1/billing/close")
    (other,) = await stack.operator.ok("GET", "/v1/invoices", params={"customer_id": other_id})

    page = await browser.request("GET", BILLING)
    link = re.search(rf'href="({BILLING}/invoices/(in_[A-Za-z0-9]+)\.html)"', page.text)
    assert link is not None
    html = await browser.request("GET", link.group(1))
    pdf = await browser.request("GET", f"{BILLING}/invoices/{link.group(2)}.pdf")
    stolen_html = await browser.request("GET", f"{BILLING}/invoices/{other['id']}.html")
    stolen_pdf = await browser.request("GET", f"{BILLING}/invoices/{other['id']}.pdf")

    assert sorted(closed["invoices_finalized"]) == ["TH-000001", "TH-000002"]
    mine = next(n for n in closed["invoices_finalized"] if n != other["number"])
    assert mine in page.text and other["number"] not in page.text
    assert html.status_code == 200 and mine in html.text and "29.00 USD" in html.text
    assert html.headers["content-security-policy"] == PAGE_POLICY
    assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
    assert pdf.headers["content-disposition"] == f'attachment; filename="{mine}.pdf"'
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    assert mine in text and "29.00 USD" in text
    assert (stolen_html.status_code, stolen_pdf.status_code) == (404, 404)
    assert other["number"] not in stolen_html.text


async def test_transactions_are_filtered_paged_and_exported_exactly(
    stack: Stack, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(billing_pages, "TRANSACTIONS_PAGE", 2)
    customer_id, _ = await stack.customer(credits_micros=1_000_000)  # the seed grant
    for n, micros in enumerate((37_500, 4_000_000)):
        await stack.operator.ok(
            "POST", f"/v1/customers/{customer_id}/credits/grants",
            json={"amount_micros": micros, "idempotency_key": f"g{n}", "description": f"=bonus {n}"},
        )  # fmt: skip
    await stack.operator.ok(
        "POST", "/v1/sessions/quota/add",
        json={"customer_id": customer_id, "product": "analysis", "sessions": 5,
              "idempotency_key": "p1"},
    )  # fmt: skip
    async with stack.runtime.db.transaction() as session:
        await users.create_user(
            session, email="tokyo@example.com", role=Role.ADMIN, customer_id=customer_id,
            password=PASSWORD, clock=stack.runtime.clock, time_zone=TOKYO,
        )  # fmt: skip
    browser = Browser(http)
    await browser.sign_in("tokyo@example.com")
    entries = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/transactions")
    today = datetime.now(ZoneInfo(TOKYO)).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    url = f"{BILLING}/transactions"

    grants = await browser.request("GET", f"{url}?kind=grant&start={today}&end={today}")
    older = re.search(
        r'href="(/dashboard/portal/billing/transactions\?[^"]+)" rel="next"', grants.text
    )
    assert older is not None
    rest = await browser.request("GET", older.group(1).replace("&amp;", "&"))
    before = await browser.request("GET", f"{url}?kind=grant&end={yesterday}")
    exported = await browser.request("GET", f"{url}.csv?kind=grant&start={today}")
    everything = await browser.request("GET", f"{url}.csv")
    bad = await browser.request("GET", f"{url}?kind=gift&start=yesterday")

    grant_ids = [e["id"] for e in entries if e["kind"] == "grant"]
    assert len(grant_ids) == 3
    shown = re.findall(r'data-entry="(\d+)"', grants.text) + re.findall(
        r'data-entry="(\d+)"', rest.text
    )
    assert [int(i) for i in shown] == grant_ids  # newest first, two a page
    assert "0.0375 USD" in grants.text and "4.00 USD" in grants.text
    assert "No transactions match" in before.text
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    by_id = {e["id"]: e for e in entries}
    expected = [
        "id,created_at,kind,account,amount,currency,description,purpose,hold_id,transfer_id"
    ]
    for entry_id, amount, description in zip(
        grant_ids, ("4.00", "0.0375", "1.00"), ("'=bonus 1", "'=bonus 0", ""), strict=True
    ):
        e = by_id[entry_id]
        moment = datetime.fromisoformat(e["created_at"]).astimezone(ZoneInfo("UTC")).isoformat()
        expected.append(
            f"{entry_id},{moment},grant,grant,{amount},usd,{description},,,{e['transfer_id']}"
        )
    assert exported.text.split("\r\n") == [*expected, ""]
    rows = list(csv.DictReader(io.StringIO(everything.text)))
    assert [int(r["id"]) for r in rows] == [e["id"] for e in entries]
    assert {r["purpose"] for r in rows if r["kind"] in ("hold", "capture")} == {"session_pack"}
    total = sum(to_micros(r["amount"]) for r in rows)
    assert total == 1_000_000 + 37_500 + 4_000_000 - SESSION_PACK_5_MICROS
    assert bad.status_code == 422 and "gift" in bad.text


@pytest.fixture
async def stripe_stack(
    tmp_path: Path, upstream: FakeUpstream
) -> AsyncIterator[tuple[Stack, FakeStripe]]:
    server = FakeStripe()
    await server.start()
    try:
        async with running_stack(
            tmp_path, upstream, stripe_api_key=API_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
            stripe_api_base=server.base_url,
        ) as running:  # fmt: skip
            yield running, server
    finally:
        await server.stop()


async def test_with_stripe_packs_and_paid_plans_go_to_checkout(
    stripe_stack: tuple[Stack, FakeStripe],
) -> None:
    stack, stripe = stripe_stack
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        browser, customer_id = await signed_in(stack, http)
        page = await browser.request("GET", BILLING)
        credit = await form(browser, f"{BILLING}/credit-pack")
        session_pack = await form(browser, f"{BILLING}/session-pack")
        plan = await form(browser, f"{BILLING}/plan")

        bought = await browser.request("POST", f"{BILLING}/credit-pack", data=credit)
        replayed = await browser.request("POST", f"{BILLING}/credit-pack", data=credit)
        keyless = await browser.request(
            "POST", f"{BILLING}/credit-pack", data={**credit, "idempotency_key": ""}
        )
        unknown = await browser.request(
            "POST", f"{BILLING}/credit-pack", data={**credit, "pack": "pack-0"}
        )
        by_card = await browser.request(
            "POST", f"{BILLING}/session-pack", data={**session_pack, "pay": "card"}
        )
        pro = await browser.request("POST", f"{BILLING}/plan", data={**plan, "plan": "pro"})

    assert 'id="no-provider"' not in page.text and "Pay by card" in page.text
    for answer in (bought, by_card, pro):
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("https://checkout.stripe.com/c/pay/cs_")
    assert replayed.headers["location"] == bought.headers["location"]
    assert keyless.status_code == 422 and "idempotency_key" in keyless.text
    assert unknown.status_code == 404 and "pack-0" in unknown.text
    sessions = stripe.posted("/v1/checkout/sessions")
    assert len(sessions) == 3  # the replay asked Stripe nothing more
    assert sessions[0].params["success_url"] == f"{stack.base_url}{BILLING}?done=paid"
    assert sessions[0].params["cancel_url"] == f"{stack.base_url}{BILLING}?done=canceled"
    assert [s.params["mode"] for s in sessions] == ["payment", "payment", "subscription"]
    assert await plan_of(stack, customer_id) == "free"  # until Stripe says it is paid
