"""The operator console over HTTP: a plan changed on a customer's page is the plan the API
answers; an invitation's one-time link sets the new user's password and that user sees its
own customer only; the catalog page lists the catalog's models with their prices; the
analytics figures are the ones `GET /v1/usage` and the ledger's transactions give for the
same range; members and admins get 404 for every console page and form."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import httpx
import openai
from tests.e2e.conftest import Stack
from tests.e2e.test_dashboard import PASSWORD, Browser, add_user, browser
from tests.support.catalog import INPUT_MICROS_PER_TOKEN, OUTPUT_MICROS_PER_TOKEN

from tollhouse.events import service as events
from tollhouse.money import format_amount
from tollhouse.users import Role

__all__ = ["browser"]  # the fixture, shared with test_dashboard


async def signed_in_operator(stack: Stack, browser: Browser) -> None:
    await add_user(stack, "op@example.com", Role.OPERATOR)
    answer = await browser.sign_in("op@example.com")
    assert answer.status_code == 303


async def test_a_plan_changed_on_the_customers_page_is_the_plan_the_api_answers(
    stack: Stack, browser: Browser
) -> None:
    customer_id, key = await stack.customer(plan="free", credits_micros=0)
    await signed_in_operator(stack, browser)
    url = f"/dashboard/console/customers/{customer_id}"
    token = await browser.csrf(url)

    unknown = await browser.request(
        "POST", f"{url}/plan", data={"plan": "no-such-plan", "csrf_token": token}
    )
    changed = await browser.request(
        "POST", f"{url}/plan", data={"plan": "pro", "csrf_token": token}
    )
    shown = await browser.request("GET", url)
    async with httpx.AsyncClient(base_url=stack.base_url) as api:
        own = await api.get("/v1/subscription/me", headers={"Authorization": f"Bearer {key}"})

    assert unknown.status_code == 404 and "no-such-plan" in unescape(unknown.text)
    assert changed.status_code == 303
    assert own.status_code == 200 and own.json()["plan"] == "pro"
    assert re.search(r'<option value="pro" selected>', shown.text)
    assert await stack.available(customer_id) > 0  # pro's included credits, delivered at once


async def test_an_invitation_link_sets_the_password_and_the_user_sees_only_its_customer(
    stack: Stack, browser: Browser
) -> None:
    ours = await stack.operator.ok("POST", "/v1/customers", json={"name": "Ours Ltd"})
    theirs = await stack.operator.ok("POST", "/v1/customers", json={"name": "Theirs Inc"})
    await signed_in_operator(stack, browser)
    url = f"/dashboard/console/customers/{ours['id']}"
    token = await browser.csrf(url)
    invite = {"email": "new@ours.example", "role": "admin", "csrf_token": token}

    invited = await browser.request("POST", f"{url}/users", data=invite)
    twice = await browser.request("POST", f"{url}/users", data=invite)
    operator_role = await browser.request(
        "POST", f"{url}/users", data={**invite, "email": "x@ours.example", "role": "operator"}
    )
    link = re.search(r'id="invite-link">([^<]+)<', invited.text)
    assert link is not None
    reset_path = unescape(link.group(1)).removeprefix(stack.runtime.settings.base_url)
    again = await browser.request("GET", url)

    newcomer = Browser(browser.http)
    before = await newcomer.sign_in("new@ours.example", "")
    reset_token = reset_path.split("token=", 1)[1]
    form = await newcomer.request("GET", reset_path)
    done = await newcomer.request(
        "POST", "/dashboard/reset", data={"token": reset_token, "password": PASSWORD}
    )
    reused = await newcomer.request(
        "POST", "/dashboard/reset", data={"token": reset_token, "password": PASSWORD}
    )
    signed = await newcomer.sign_in("new@ours.example")
    portal = await newcomer.request("GET", "/dashboard/portal")
    console_page = await newcomer.request("GET", f"/dashboard/console/customers/{theirs['id']}")

    assert invited.status_code == 200 and reset_path.startswith("/dashboard/reset?token=")
    assert "new@ours.example (admin)" in invited.text
    assert twice.status_code == 409 and "invite-link" not in twice.text
    assert operator_role.status_code == 422
    assert 'id="invite-link"' not in again.text  # shown once
    assert before.status_code == 401  # no password until the link is followed
    assert form.status_code == 200
    assert done.status_code == 200 and reused.status_code == 400
    assert signed.status_code == 303
    assert portal.status_code == 200 and "Ours Ltd" in portal.text
    assert "Theirs Inc" not in portal.text
    assert console_page.status_code == 404


async def test_the_catalog_page_lists_every_model_with_its_prices(
    stack: Stack, browser: Browser
) -> None:
    await signed_in_operator(stack, browser)
    shown = await browser.request("GET", "/dashboard/console/catalog")
    catalog = stack.runtime.catalog

    rows = dict(re.findall(r'<tr><th scope="row">([^<]+)</th>(.*?)</tr>', shown.text, re.S))
    assert shown.status_code == 200
    assert set(catalog.models) <= set(rows)
    assert set(catalog.plans) <= set(rows)
    chat = re.findall(r'<td class="num">([^<]+)</td>', rows["test-chat"])
    # per request, input and output per 1M tokens, image, audio second, 1M characters
    assert chat[1:3] == [
        f"{INPUT_MICROS_PER_TOKEN}.00 USD",
        f"{OUTPUT_MICROS_PER_TOKEN}.00 USD",
    ]
    for pack in catalog.credit_packs.values():
        assert pack.name in rows
    for product in catalog.session_products.values():
        assert product.name in rows


async def _spent(api: httpx.AsyncClient, customer_id: str) -> int:
    """What the customer's captures took, from its transactions (the ledger the API reads)."""
    rows = (await api.get(f"/v1/customers/{customer_id}/transactions?limit=500")).json()
    return -sum(r["amount_micros"] for r in rows if r["kind"] == "capture")


async def test_analytics_figures_are_what_the_usage_api_and_the_ledger_say(
    stack: Stack, browser: Browser
) -> None:
    busy, busy_key = await stack.customer(credits_micros=2_000_000)
    quiet, quiet_key = await stack.customer(credits_micros=2_000_000)
    idle, idle_key = await stack.customer(credits_micros=0)
    for key, calls in ((busy_key, 3), (quiet_key, 1)):
        client = openai.AsyncOpenAI(api_key=key, base_url=stack.base_url + "/v1", max_retries=0)
        for _ in range(calls):
            await client.chat.completions.create(
                model="test-chat", messages=[{"role": "user", "content": "hi"}]
            )
    async with httpx.AsyncClient(base_url=stack.base_url) as raw:
        broke = await raw.post(
            "/v1/chat/completions", headers={"Authorization": f"Bearer {idle_key}"},
            json={"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]},
        )  # fmt: skip
        started = await raw.post(
            "/v1/sessions", json={"product": "analysis", "idempotency_key": "s-1"},
            headers={"Authorization": f"Bearer {quiet_key}"},
        )  # fmt: skip
    assert (broke.status_code, started.status_code) == (402, 201), started.text
    await stack.runtime.drain()
    await signed_in_operator(stack, browser)

    page = await browser.request("GET", "/dashboard/console/analytics?days=7")
    bad = await browser.request(
        "GET", "/dashboard/console/analytics?start=2026-12-09&end=2026-12-01"
    )

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=6), today + timedelta(days=1)
    window = {"start": start.isoformat(), "end": end.isoformat()}
    meters = ["api_calls", "input_tokens", "output_tokens"]
    requests = tokens_in = tokens_out = 0
    spent: dict[str, int] = {}
    async with httpx.AsyncClient(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.operator_key}"}
    ) as api:
        for customer_id in (busy, quiet, idle):
            params = {**window, "customer_id": customer_id, "group_by": "model", "meter": meters}
            usage = (await api.get("/v1/usage", params=params)).json()
            for bucket in usage["buckets"]:
                assert bucket["group"] == "test-chat"
                if bucket["meter"] == "api_calls":
                    requests += bucket["value"]
                elif bucket["meter"] == "input_tokens":
                    tokens_in += bucket["value"]
                else:
                    tokens_out += bucket["value"]
            spent[customer_id] = await _spent(api, customer_id)
        customers = (await api.get("/v1/customers", params={"limit": 1000})).json()

    found = re.search(r'<script type="application/json" id="analytics-data">(.*?)</script>',
                      page.text, re.S)  # fmt: skip
    assert page.status_code == 200 and found is not None
    charts = json.loads(unescape(found.group(1)))
    days = charts["requests"]["x"]
    assert days == [int((start + timedelta(days=n)).timestamp()) for n in range(7)]
    assert charts["requests"]["series"]["Requests"] == [0] * 6 + [requests]
    assert requests == 4
    captured = charts["revenue"]["series"]["Captured"]
    assert captured[:6] == [0] * 6 and captured[6] == sum(spent.values()) > 0
    assert charts["revenue"]["series"]["Paid"] == [0] * 7
    assert charts["sessions"]["series"]["Sessions started"] == [0] * 6 + [1]
    assert charts["tokens"]["series"]["test-chat"][6] == tokens_in + tokens_out
    model_row = re.search(
        r'<th scope="row">test-chat</th><td class="num">(\d+)</td><td class="num">(\d+)</td>',
        page.text,
    )
    assert model_row is not None
    assert (int(model_row.group(1)), int(model_row.group(2))) == (tokens_in, tokens_out)
    top = re.findall(r'customers/(cus_\w+)">[^<]*</a></td><td class="num">([^<]+)</td>', page.text)
    # the session's fee ($1) outweighs three calls; the idle customer spent nothing
    assert [customer_id for customer_id, _ in top] == [quiet, busy]
    assert [amount for _, amount in top] == [
        format_amount(spent[quiet], "usd"),
        format_amount(spent[busy], "usd"),
    ]
    adoption = re.search(r'id="adoption">(\d+) of (\d+)', page.text)
    assert adoption is not None
    assert (int(adoption.group(1)), int(adoption.group(2))) == (3, len(customers))
    refused = re.search(r'<th scope="row">free</th>(.*?)</tr>', page.text, re.S)
    assert refused is not None and "insufficient-credit" in page.text
    assert re.findall(r'<td class="num">(\d+)</td>', refused.group(1)) == ["1"]
    assert bad.status_code == 422 and "end must be on or after start" in bad.text


async def test_members_and_admins_get_404_for_the_console_and_signed_out_visitors_the_login(
    stack: Stack, browser: Browser
) -> None:
    customer_id, _ = await stack.customer()
    await add_user(stack, "member@example.com", Role.MEMBER, customer_id)
    await add_user(stack, "admin@example.com", Role.ADMIN, customer_id)
    pages = [
        "/dashboard/console",
        "/dashboard/console/catalog",
        "/dashboard/console/analytics",
        f"/dashboard/console/customers/{customer_id}",
    ]
    forms = [f"/dashboard/console/customers/{customer_id}/{f}" for f in ("grant", "plan", "users")]
    signed_out = [(await browser.request("GET", url)) for url in pages]
    for email in ("member@example.com", "admin@example.com"):
        user = Browser(browser.http)
        await user.sign_in(email)
        token = await user.csrf("/dashboard/portal")
        for url in pages:
            assert (await user.request("GET", url)).status_code == 404, (email, url)
        for url in forms:
            posted = await user.request("POST", url, data={"csrf_token": token, "amount": "5"})
            assert posted.status_code == 404, (email, url)
    assert [r.status_code for r in signed_out] == [303] * len(pages)
    assert {r.headers["location"] for r in signed_out} == {"/dashboard/login"}
    assert await stack.available(customer_id) == 1_000_000  # nothing granted


async def test_the_list_sorts_and_the_customers_page_revokes_a_grant_and_lists_events_newest_first(
    stack: Stack, browser: Browser
) -> None:
    first = await stack.operator.ok("POST", "/v1/customers", json={"name": "Beta first"})
    second = await stack.operator.ok("POST", "/v1/customers", json={"name": "Alpha second"})
    granted = await stack.operator.ok(
        "POST", f"/v1/customers/{first['id']}/credits/grants",
        json={"amount_micros": 3_000_000, "idempotency_key": "promo"},
    )  # fmt: skip
    await signed_in_operator(stack, browser)
    listed = {
        sort: re.findall(
            r'customers/(cus_\w+)">',
            (await browser.request("GET", f"/dashboard/console?sort={sort}")).text,
        )
        for sort in ("name", "newest", "oldest")
    }
    url = f"/dashboard/console/customers/{first['id']}"
    token = await browser.csrf(url)
    revoked = await browser.request(
        "POST", f"{url}/grants/{granted['id']}/revoke", data={"csrf_token": token}
    )
    left = await stack.available(first["id"])
    async with stack.runtime.db.transaction() as session:
        for kind in ("credits.low", "session.started", "session.ended"):
            await events.emit(session, customer_id=first["id"], type=kind, data={})
    shown = await browser.request("GET", url)

    assert listed["name"][:2] == [second["id"], first["id"]]
    assert listed["newest"][:2] == [second["id"], first["id"]]
    assert listed["oldest"][-2:] == [first["id"], second["id"]]
    assert revoked.status_code == 303
    assert left == 0  # the whole grant went back
    shown_types = re.findall(r"<tr><td>[^<]*</td><td>([a-z_]+\.[a-z_]+)</td>", shown.text)
    assert shown_types == ["session.ended", "session.started", "credits.low"]  # newest first
