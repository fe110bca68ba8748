"""The customer portal's keys and sessions pages over HTTP, the server's clock frozen.

Story: a member makes a key limited to one model, read and write, for seven days, and the
gateway holds it to that; a form asking for a model outside the plan or an expiry in the
past is answered with its error. Rotating a key shows the successor's secret once and the
old one stops. Only an admin user makes (or rotates) an `admin` key. On the sessions page
the member starts a flat session (a form posted twice charges once), is told when a second
one of the product is refused or the wallet is short, starts a compute session whose
running cost the page shows, and stops it: it is billed for the run. Another customer's
session cannot be stopped: 404.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import Stack, running_stack
from tests.e2e.test_dashboard import CSRF, Browser, add_user
from tests.e2e.test_dashboard import browser as browser  # the fixture
from tests.support.catalog import SESSION_PRICE_MICROS, SMALL_MICROS_PER_HOUR
from tests.support.server import Api
from tests.support.upstream import FakeUpstream

from tollhouse.clock import FrozenClock
from tollhouse.keys import service as keys
from tollhouse.sessions import service as sessions
from tollhouse.users import Role

KEYS = "/dashboard/portal/keys"
SESSIONS = "/dashboard/portal/sessions"
SECRET = re.compile(r'id="new-key">(th_[A-Za-z0-9_]+)<')
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 15, 12, 0, tzinfo=UTC))


@pytest.fixture
async def stack(tmp_path: Path, upstream: FakeUpstream, clock: FrozenClock) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, upstream, clock=clock) as running:
        yield running


async def signed_in(
    stack: Stack, browser: Browser, role: Role, credits_micros: int = 1_000_000
) -> str:
    """A new customer (free plan) with a signed-in user of `role`; returns its id."""
    customer_id, _ = await stack.customer(credits_micros=credits_micros)
    email = f"{role.value}-{customer_id}@example.com"
    await add_user(stack, email, role, customer_id)
    assert (await browser.sign_in(email)).status_code == 303
    return customer_id


def start_key(page: str, what: str) -> str:
    """The idempotency key of the start form for `what` (`flat-<product>`, `tier-<tier>`)."""
    found = re.search(rf'name="idempotency_key" value="([^"]+-{what})"', page)
    assert found is not None, what
    return found.group(1)


async def test_a_key_made_with_scopes_models_and_expiry_is_held_to_them(
    stack: Stack, browser: Browser, clock: FrozenClock
) -> None:
    customer_id = await signed_in(stack, browser, Role.MEMBER)
    form = await browser.request("GET", KEYS)
    token = await browser.csrf(KEYS)
    made = await browser.request(
        "POST", KEYS,
        data={"name": "ci", "scope_read": "1", "scope_write": "1", "model_test-chat": "1",
              "expires_in_days": "7", "csrf_token": token},
    )  # fmt: skip
    outside = await browser.request(
        "POST", KEYS, data={"name": "x", "scope_read": "1", "model_test-chat-pro": "1",
                            "csrf_token": token},
    )  # fmt: skip
    past = await browser.request(
        "POST", KEYS, data={"name": "x", "scope_read": "1", "expires_on": "2026-03-14",
                            "csrf_token": token},
    )  # fmt: skip
    secret = SECRET.search(made.text)
    assert secret is not None
    async with httpx.AsyncClient(base_url=stack.base_url) as api:
        auth = {"Authorization": f"Bearer {secret.group(1)}"}
        allowed = await api.post(
            "/v1/chat/completions", json={**CHAT, "model": "test-chat"}, headers=auth
        )
        refused = await api.post(
            "/v1/chat/completions", json={**CHAT, "model": "test-chat-nousage"}, headers=auth
        )
        clock.advance(7 * 86_400)
        expired = await api.get(f"/v1/customers/{customer_id}/balance", headers=auth)
    async with stack.runtime.db.transaction() as session:
        ci = next(
            k for k in await keys.list_keys(session, customer_id=customer_id) if k.name == "ci"
        )

    assert 'name="model_test-chat"' in form.text
    assert "model_test-chat-pro" not in form.text  # a pro model: not on a free plan's form
    assert 'name="scope_admin"' not in form.text  # members cannot ask for it
    assert made.status_code == 200
    assert (ci.scopes, ci.allowed_models) == (["read", "write"], ["test-chat"])
    assert ci.expires_at == datetime(2026, 3, 22, 12, 0, tzinfo=UTC)
    assert allowed.status_code == 200, allowed.text
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model-not-allowed"
    assert expired.status_code == 401
    assert outside.status_code == 422 and "not models of your plan: test-chat-pro" in outside.text
    assert past.status_code == 422 and "must be today or later" in past.text


async def test_rotating_a_key_shows_the_successor_once_and_the_old_key_stops(
    stack: Stack, browser: Browser
) -> None:
    customer_id = await signed_in(stack, browser, Role.MEMBER)
    token = await browser.csrf(KEYS)
    made = await browser.request(
        "POST", KEYS, data={"name": "laptop", "scope_read": "1", "csrf_token": token}
    )
    old = SECRET.search(made.text)
    key_id = re.search(rf"{KEYS}/(key_[A-Za-z0-9]+)/rotate", made.text.split("laptop</td>")[1])
    assert old is not None and key_id is not None
    rotated = await browser.request(
        "POST", f"{KEYS}/{key_id.group(1)}/rotate",
        data={"grace_seconds": "0", "csrf_token": token},
    )  # fmt: skip
    again = await browser.request(
        "POST", f"{KEYS}/{key_id.group(1)}/rotate",
        data={"grace_seconds": "0", "csrf_token": token},
    )  # fmt: skip
    new = SECRET.search(rotated.text)
    listed = await browser.request("GET", KEYS)
    assert new is not None
    async with httpx.AsyncClient(base_url=stack.base_url) as api:
        balance = f"/v1/customers/{customer_id}/balance"
        with_old = await api.get(balance, headers={"Authorization": f"Bearer {old.group(1)}"})
        with_new = await api.get(balance, headers={"Authorization": f"Bearer {new.group(1)}"})

    assert rotated.status_code == 200 and new.group(1) != old.group(1)
    assert new.group(1) not in listed.text  # shown once
    assert again.status_code == 409  # a key rotates once
    assert (with_old.status_code, with_new.status_code) == (401, 200)


async def test_only_an_admin_user_makes_or_rotates_an_admin_key(
    stack: Stack, browser: Browser
) -> None:
    customer_id = await signed_in(stack, browser, Role.ADMIN)
    admin_token = await browser.csrf(KEYS)
    made = await browser.request(
        "POST", KEYS, data={"name": "root", "scope_admin": "1", "csrf_token": admin_token}
    )
    member = Browser(browser.http)
    await add_user(stack, "member@example.com", Role.MEMBER, customer_id)
    await member.sign_in("member@example.com")
    token = await member.csrf(KEYS)
    refused = await member.request(
        "POST", KEYS, data={"name": "mine", "scope_admin": "1", "csrf_token": token}
    )
    async with stack.runtime.db.transaction() as session:
        root = next(k for k in await keys.list_keys(session, customer_id=customer_id)
                    if k.name == "root")  # fmt: skip
    rotation = await member.request(
        "POST", f"{KEYS}/{root.id}/rotate", data={"grace_seconds": "0", "csrf_token": token}
    )
    async with stack.runtime.db.transaction() as session:
        names = [k.name for k in await keys.list_keys(session, customer_id=customer_id)]

    assert made.status_code == 200 and SECRET.search(made.text) is not None
    assert root.scopes == ["admin"]
    assert (refused.status_code, rotation.status_code) == (403, 403)
    assert sorted(names) == ["default", "root"]  # the seed key and the admin's key only


async def test_a_flat_session_started_twice_from_one_form_charges_once_and_stops(
    stack: Stack, browser: Browser
) -> None:
    customer_id = await signed_in(stack, browser, Role.MEMBER, credits_micros=3_000_000)
    page = await browser.request("GET", SESSIONS)
    token = await browser.csrf(SESSIONS)
    start = {"product": "analysis", "idempotency_key": start_key(page.text, "flat-analysis"),
             "csrf_token": token}  # fmt: skip
    first = await browser.request("POST", SESSIONS, data=start)
    double = await browser.request("POST", SESSIONS, data=start)
    listed = await browser.request("GET", SESSIONS)
    second = await browser.request(
        "POST", SESSIONS, data={**start, "idempotency_key": start_key(listed.text, "flat-analysis")}
    )
    after_start = await stack.available(customer_id)
    stop = re.search(r'action="/dashboard/portal/sessions/(ses_[A-Za-z0-9]+)/stop"', listed.text)
    assert stop is not None
    stopped = await browser.request(
        "POST", f"{SESSIONS}/{stop.group(1)}/stop", data={"csrf_token": token}
    )
    ended = await browser.request("GET", SESSIONS)
    async with stack.runtime.db.transaction() as session:
        view = await sessions.get(session, stop.group(1), clock=stack.runtime.clock)

    assert (first.status_code, double.status_code) == (303, 303)
    assert listed.text.count('/stop"') == 1
    assert re.search(r'id="time-left-ses_\w+">1 d<', listed.text)  # the clock is frozen
    assert re.search(r'id="tokens-left-ses_\w+">100,000 of 100,000<', listed.text)
    assert second.status_code == 409 and 'role="alert"' in second.text
    assert after_start == 3_000_000 - SESSION_PRICE_MICROS  # charged once
    assert stopped.status_code == 303
    assert (view.status, view.end_reason) == ("ended", "terminated")
    assert "No active session." in ended.text and "terminated" in ended.text
    assert await stack.available(customer_id) == after_start  # a flat fee is not refunded


async def test_a_start_that_cannot_be_made_is_refused_on_the_page(
    stack: Stack, browser: Browser
) -> None:
    customer_id = await signed_in(stack, browser, Role.MEMBER, credits_micros=500_000)
    page = await browser.request("GET", SESSIONS)
    token = await browser.csrf(SESSIONS)
    refused = await browser.request(
        "POST", SESSIONS,
        data={"product": "analysis", "csrf_token": token,
              "idempotency_key": start_key(page.text, "flat-analysis")},
    )  # fmt: skip
    bad_tier = await browser.request(
        "POST", SESSIONS,
        data={"resource_tier": "large", "csrf_token": token, "idempotency_key": "k-large"},
    )  # fmt: skip
    unknown = await browser.request(
        "POST", SESSIONS, data={"product": "nope", "csrf_token": token, "idempotency_key": "k-2"}
    )
    neither = await browser.request(
        "POST", SESSIONS, data={"csrf_token": token, "idempotency_key": "k-3"}
    )

    assert refused.status_code == 402 and 'role="alert"' in refused.text
    assert (unknown.status_code, neither.status_code) == (404, 422)
    assert bad_tier.status_code == 403 and "pro" in bad_tier.text  # the plan that has it
    assert await stack.available(customer_id) == 500_000


async def test_a_compute_session_shows_its_running_cost_and_is_billed_when_stopped(
    stack: Stack, browser: Browser, clock: FrozenClock
) -> None:
    customer_id = await signed_in(stack, browser, Role.MEMBER, credits_micros=1_000_000)
    page = await browser.request("GET", SESSIONS)
    token = await browser.csrf(SESSIONS)
    started = await browser.request(
        "POST", SESSIONS,
        data={"resource_tier": "small", "csrf_token": token,
              "idempotency_key": start_key(page.text, "tier-small")},
    )  # fmt: skip
    clock.advance(600)  # within the held minimum run of 900 s
    running = await browser.request("GET", SESSIONS)
    session_id = re.search(r"/dashboard/portal/sessions/(ses_[A-Za-z0-9]+)/stop", running.text)
    assert session_id is not None
    stopped = await browser.request(
        "POST", f"{SESSIONS}/{session_id.group(1)}/stop", data={"csrf_token": token}
    )
    async with stack.runtime.db.transaction() as session:
        view = await sessions.get(session, session_id.group(1), clock=stack.runtime.clock)

    cost = 600 * SMALL_MICROS_PER_HOUR // 3600  # 12,500 micros, exactly
    assert started.status_code == 303
    assert "0.075 USD per hour" in running.text
    assert "<dt>Running for</dt><dd>10 min</dd>" in running.text
    assert f'id="cost-{session_id.group(1)}">0.0125 USD<' in running.text
    assert 'data-refresh-seconds="5"' in running.text
    assert stopped.status_code == 303
    assert (view.status, view.billed_micros) == ("ended", cost)
    assert await stack.available(customer_id) == 1_000_000 - cost


async def test_another_customers_session_cannot_be_stopped(stack: Stack, browser: Browser) -> None:
    _, other_key = await stack.customer(credits_micros=2_000_000)
    async with Api(stack.base_url, other_key) as api:
        theirs = await api.ok(
            "POST", "/v1/sessions", json={"product": "analysis", "idempotency_key": "o-1"}
        )
    await signed_in(stack, browser, Role.MEMBER)
    token = await browser.csrf(SESSIONS)
    refused = await browser.request(
        "POST", f"{SESSIONS}/{theirs['id']}/stop", data={"csrf_token": token}
    )
    forged = await browser.request("POST", f"{SESSIONS}/{theirs['id']}/stop", data={})
    async with stack.runtime.db.transaction() as session:
        view = await sessions.get(session, theirs["id"], clock=stack.runtime.clock)

    assert refused.status_code == 404 and 'role="alert"' in refused.text
    assert forged.status_code == 403
    assert view.status == "active"
    assert CSRF.search(refused.text) is not None  # the page, with its forms, not a 500
