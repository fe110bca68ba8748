"""The dashboard in a real browser (Debian's chromium driven by Playwright): sign in, the
overview with its chart drawn by the vendored uPlot under the strict CSP (no console error),
the theme toggle, a key created with its secret shown once, a flat session started and
stopped, an operator's grant shown on the customer's page and the analytics chart's drawn
points. Skips without chromium, except under CI=true, where `.ci/run` installs it."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.conftest import IN_CI
from tests.e2e.conftest import Stack
from tests.support.upstream import COMPLETION_TOKENS, PROMPT_TOKENS

from tollhouse.money import format_amount
from tollhouse.users import Role
from tollhouse.users import service as users

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if not os.path.exists(CHROMIUM):
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing (CI=true requires it)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


async def signed_in(
    stack: Stack, browser: object, email: str, role: Role, customer_id: str | None = None
) -> tuple[Any, list[str]]:
    """A new page of `browser` signed in as a new user `email` (the page it lands on
    loaded), and the list the page's console errors and uncaught exceptions go to."""
    async with stack.runtime.db.transaction() as session:
        await users.create_user(
            session, email=email, role=role, customer_id=customer_id, password=PASSWORD,
            clock=stack.runtime.clock,
        )  # fmt: skip
    page = await browser.new_page()  # type: ignore[attr-defined]
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await page.goto(stack.base_url + "/dashboard/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(
        "**/dashboard/console" if role == Role.OPERATOR else "**/dashboard/portal"
    )
    return page, problems


async def test_a_member_signs_in_sees_the_chart_switches_theme_and_makes_a_key(
    stack: Stack, browser: object, artifacts: Path
) -> None:
    customer_id, key = await stack.customer(credits_micros=2_000_000)
    api = openai.AsyncOpenAI(api_key=key, base_url=stack.base_url + "/v1", max_retries=0)
    await api.chat.completions.create(
        model="test-chat", messages=[{"role": "user", "content": "hi"}]
    )
    await stack.runtime.drain()
    page, problems = await signed_in(stack, browser, "ada@example.com", Role.MEMBER, customer_id)
    await page.wait_for_selector("#usage-chart canvas")
    drawn = await page.evaluate("document.getElementById('usage-chart').chart.data")
    balance = await page.locator("#balance").inner_text()
    rows = await page.locator("table tbody tr").count()

    before = await page.evaluate("document.documentElement.getAttribute('data-theme')")
    await page.get_by_role("button", name="Switch between light and dark theme").click()
    after = await page.evaluate("document.documentElement.getAttribute('data-theme')")
    await page.reload()
    kept = await page.evaluate("document.documentElement.getAttribute('data-theme')")

    await page.get_by_role("link", name="API keys").click()
    await page.get_by_label("Name").fill("laptop")
    await page.get_by_role("button", name="Create key").click()
    secret = await page.locator("#new-key").inner_text()
    await page.screenshot(path=str(artifacts / "keys.png"))

    assert balance.endswith(" USD") and balance != "2.00 USD"  # the call was charged
    today = stack.runtime.clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    # one call today: 1 request, the upstream's 12 prompt and 7 completion tokens
    assert drawn == [[int(today.timestamp())], [1], [PROMPT_TOKENS + COMPLETION_TOKENS]]
    assert rows >= 1
    assert before is None and after in ("light", "dark") and kept == after
    assert secret.startswith("th_")
    assert problems == []


async def test_a_member_starts_and_stops_a_flat_session(
    stack: Stack, browser: object, artifacts: Path
) -> None:
    customer_id, _ = await stack.customer(credits_micros=2_000_000)
    page, problems = await signed_in(stack, browser, "ada@example.com", Role.MEMBER, customer_id)
    await page.get_by_role("link", name="Sessions").click()
    await page.get_by_role("button", name="Start a session: analysis").click()
    card = page.locator("#live-sessions article")
    await card.wait_for()
    tokens_left = await card.locator("[id^=tokens-left-]").inner_text()
    time_left = await card.locator("[id^=time-left-]").inner_text()
    charged = await stack.available(customer_id)
    await page.screenshot(path=str(artifacts / "session-running.png"), full_page=True)

    await card.get_by_role("button", name=re.compile("^Stop the analysis session")).click()
    await page.get_by_text("No active session.").wait_for()
    ended = await page.locator("table tbody tr").first.inner_text()
    await page.screenshot(path=str(artifacts / "session-stopped.png"), full_page=True)

    assert tokens_left == "100,000 of 100,000"
    assert time_left in ("1 d", "23 h 59 min")
    assert charged == 1_000_000  # the $1.00 fee, once
    assert "analysis" in ended and "terminated" in ended
    assert (artifacts / "session-stopped.png").stat().st_size > 0
    assert problems == []


async def test_an_operator_grants_credits_and_reads_the_analytics_chart(
    stack: Stack, browser: object, artifacts: Path
) -> None:
    customer_id, key = await stack.customer(credits_micros=1_000_000)
    api = openai.AsyncOpenAI(api_key=key, base_url=stack.base_url + "/v1", max_retries=0)
    for _ in range(2):
        await api.chat.completions.create(
            model="test-chat", messages=[{"role": "user", "content": "hi"}]
        )
    await stack.runtime.drain()
    before = await stack.available(customer_id)
    page, problems = await signed_in(stack, browser, "op@example.com", Role.OPERATOR)
    await page.locator(f'a[href="/dashboard/console/customers/{customer_id}"]').click()
    await page.wait_for_url(f"**/console/customers/{customer_id}")
    await page.get_by_label("Amount (USD)").fill("12.50")
    await page.get_by_role("button", name="Grant", exact=True).click()
    await page.wait_for_url(f"**/console/customers/{customer_id}")
    balance = await page.locator("#balance").inner_text()
    await page.screenshot(path=str(artifacts / "customer.png"), full_page=True)

    await page.get_by_role("link", name="Analytics").click()
    await page.wait_for_selector("#chart-requests canvas")
    drawn = await page.evaluate("document.getElementById('chart-requests').chart.data")
    table = await page.locator("#daily tbody tr").evaluate_all(
        "rows => rows.map(r => Number(r.cells[1].textContent))"
    )
    await page.screenshot(path=str(artifacts / "analytics.png"), full_page=True)

    assert balance == format_amount(before + 12_500_000, "usd")
    assert len(drawn) == 2 and len(drawn[0]) == 30  # the last 30 days, one point each
    assert drawn[1] == table and drawn[1][-1] == 2 and sum(drawn[1]) == 2
    assert (artifacts / "analytics.png").stat().st_size > 0
    assert problems == []
