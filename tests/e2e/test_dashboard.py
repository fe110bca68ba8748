"""The dashboard over HTTP: sign in (rate limited, CSRF-checked), the customer portal (balance,
keys created once-shown and revoked), the operator console (search, grant credits), password
reset links from the CLI's service, sign out. Cookies are sent by hand: they are `Secure`, and
an HTTP client keeps those for HTTPS only (a browser also for `http://localhost`)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.e2e.conftest import Stack

from tollhouse.keys import service as keys
from tollhouse.users import Role
from tollhouse.users import service as users

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """An HTTP client that keeps the dashboard's cookies itself."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.cookies: dict[str, str] = {}

    async def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        header = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = await self.http.request(method, url, headers={"cookie": header}, **kwargs)  # type: ignore[arg-type]
        for name, value in response.cookies.items():
            self.cookies[name] = value
        for raw in response.headers.get_list("set-cookie"):
            if "Max-Age=0" in raw or "expires=Thu, 01 Jan 1970" in raw:
                self.cookies.pop(raw.split("=", 1)[0], None)
        return response

    async def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        form = await self.request("GET", "/dashboard/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token is not None
        return await self.request(
            "POST", "/dashboard/login",
            data={"email": email, "password": password, "login_token": token.group(1)},
        )  # fmt: skip

    async def csrf(self, url: str) -> str:
        page = await self.request("GET", url)
        assert page.status_code == 200, page.text
        found = CSRF.search(page.text)
        assert found is not None
        return found.group(1)


@pytest.fixture
async def browser(stack: Stack) -> AsyncIterator[Browser]:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        yield Browser(http)


async def add_user(stack: Stack, email: str, role: Role, customer_id: str | None = None) -> None:
    async with stack.runtime.db.transaction() as session:
        await users.create_user(
            session, email=email, role=role, customer_id=customer_id, password=PASSWORD,
            clock=stack.runtime.clock,
        )  # fmt: skip


async def test_sign_in_sets_a_strict_session_cookie_and_wrong_passwords_fail(
    stack: Stack, browser: Browser
) -> None:
    customer_id, _ = await stack.customer()
    await add_user(stack, "ada@example.com", Role.ADMIN, customer_id)

    wrong = await browser.sign_in("ada@example.com", "not the password")
    unknown = await browser.sign_in("nobody@example.com")
    right = await browser.sign_in("Ada@Example.com")

    assert (wrong.status_code, unknown.status_code) == (401, 401)
    assert "Wrong email or password" in wrong.text and "Wrong email or password" in unknown.text
    assert (right.status_code, right.headers["location"]) == (303, "/dashboard")
    cookie = next(c for c in right.headers.get_list("set-cookie") if c.startswith("th_session="))
    for attribute in ("HttpOnly", "Secure", "SameSite=lax", "Path=/dashboard"):
        assert attribute.lower() in cookie.lower(), cookie
    home = await browser.request("GET", "/dashboard")
    assert home.headers["location"] == "/dashboard/portal"


async def test_a_form_without_the_sessions_csrf_token_is_refused(
    stack: Stack, browser: Browser
) -> None:
    customer_id, _ = await stack.customer()
    await add_user(stack, "ada@example.com", Role.MEMBER, customer_id)
    await browser.sign_in("ada@example.com")
    forged = await browser.request("POST", "/dashboard/portal/keys", data={"name": "x"})
    stolen = await browser.request(
        "POST", "/dashboard/portal/keys", data={"name": "x", "csrf_token": "guess"}
    )
    login = await browser.request(
        "POST", "/dashboard/login", data={"email": "ada@example.com", "password": PASSWORD}
    )
    assert (forged.status_code, stolen.status_code, login.status_code) == (403, 403, 403)
    async with stack.runtime.db.transaction() as session:
        assert len(await keys.list_keys(session, customer_id=customer_id)) == 1  # the seed key


async def test_the_portal_shows_the_balance_and_makes_and_revokes_keys(
    stack: Stack, browser: Browser
) -> None:
    customer_id, _ = await stack.customer(credits_micros=1_250_000)
    await add_user(stack, "ada@example.com", Role.MEMBER, customer_id)
    await browser.sign_in("ada@example.com")

    overview = await browser.request("GET", "/dashboard/portal?days=7")
    token = await browser.csrf("/dashboard/portal/keys")
    made = await browser.request(
        "POST", "/dashboard/portal/keys",
        data={"name": "laptop", "scope_read": "1", "csrf_token": token},
    )  # fmt: skip
    secret = re.search(r'id="new-key">(th_[A-Za-z0-9_]+)<', made.text)
    assert secret is not None
    listed = await browser.request("GET", "/dashboard/portal/keys")
    async with httpx.AsyncClient(base_url=stack.base_url) as api:
        auth = {"Authorization": f"Bearer {secret.group(1)}"}
        before = await api.get(f"/v1/customers/{customer_id}/balance", headers=auth)
        key_id = re.search(
            r"laptop</td>.*?/dashboard/portal/keys/(key_[A-Za-z0-9]+)/revoke", listed.text, re.S
        )
        assert key_id is not None
        revoked = await browser.request(
            "POST", f"/dashboard/portal/keys/{key_id.group(1)}/revoke", data={"csrf_token": token}
        )
        after = await api.get(f"/v1/customers/{customer_id}/balance", headers=auth)

    assert overview.status_code == 200
    assert "1.25 USD" in overview.text
    assert overview.headers["content-security-policy"].startswith("default-src 'none'")
    assert secret.group(1) not in listed.text  # shown once
    assert before.status_code == 200 and before.json()["available_micros"] == 1_250_000
    assert revoked.status_code == 303
    assert after.status_code == 401


async def test_the_console_searches_customers_and_grants_credits_for_operators_only(
    stack: Stack, browser: Browser
) -> None:
    made = await stack.operator.ok("POST", "/v1/customers", json={"name": "Zed Labs"})
    customer_id = made["id"]
    await add_user(stack, "op@example.com", Role.OPERATOR)
    await add_user(stack, "member@example.com", Role.MEMBER, customer_id)
    member = Browser(browser.http)
    await member.sign_in("member@example.com")
    refused = await member.request("GET", "/dashboard/console")

    await browser.sign_in("op@example.com")
    found = await browser.request("GET", "/dashboard/console?q=zed")
    missed = await browser.request("GET", "/dashboard/console?q=nothing-like-it")
    page = await browser.request("GET", f"/dashboard/console/customers/{customer_id}")
    csrf = CSRF.search(page.text)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert csrf is not None and key is not None
    grant = {"amount": "2.50", "csrf_token": csrf.group(1), "idempotency_key": key.group(1)}
    first = await browser.request(
        "POST", f"/dashboard/console/customers/{customer_id}/grant", data=grant
    )
    again = await browser.request(
        "POST", f"/dashboard/console/customers/{customer_id}/grant", data=grant
    )
    bad = await browser.request(
        "POST", f"/dashboard/console/customers/{customer_id}/grant",
        data={**grant, "amount": "0.0000001", "idempotency_key": "other"},
    )  # fmt: skip

    assert refused.status_code == 404  # the console does not exist for a member
    assert "Zed Labs" in found.text and "Zed Labs" not in missed.text
    assert (first.status_code, again.status_code) == (303, 303)
    assert bad.status_code == 200 and "not a whole number of micros" in bad.text
    assert await stack.available(customer_id) == 2_500_000  # once, exactly


async def test_five_wrong_passwords_are_rate_limited(stack: Stack, browser: Browser) -> None:
    await add_user(stack, "eve@example.com", Role.OPERATOR)
    answers = [(await browser.sign_in("eve@example.com", "guess-guess")) for _ in range(6)]
    right = await browser.sign_in("eve@example.com")  # the right password, too soon
    other = await browser.sign_in("ada@example.com", "guess-guess")  # another email

    assert [a.status_code for a in answers[:5]] == [401] * 5
    assert answers[5].status_code == 429
    assert int(answers[5].headers["retry-after"]) > 60
    assert right.status_code == 429
    assert other.status_code == 401


async def test_a_reset_link_sets_the_password_once_and_sign_out_ends_the_session(
    stack: Stack, browser: Browser
) -> None:
    async with stack.runtime.db.transaction() as session:
        await users.create_user(
            session, email="new@example.com", role=Role.OPERATOR, clock=stack.runtime.clock
        )
        token = await users.issue_reset(session, "new@example.com", clock=stack.runtime.clock)
    no_password_yet = await browser.sign_in("new@example.com", "")
    form = await browser.request("GET", f"/dashboard/reset?token={token}")
    short = await browser.request(
        "POST", "/dashboard/reset", data={"token": token, "password": "short"}
    )
    done = await browser.request(
        "POST", "/dashboard/reset", data={"token": token, "password": PASSWORD}
    )
    reused = await browser.request(
        "POST", "/dashboard/reset", data={"token": token, "password": PASSWORD}
    )
    signed = await browser.sign_in("new@example.com")
    console = await browser.request("GET", "/dashboard/console")
    csrf = CSRF.search(console.text)
    assert csrf is not None
    out = await browser.request("POST", "/dashboard/logout", data={"csrf_token": csrf.group(1)})
    after = await browser.request("GET", "/dashboard/console")

    assert no_password_yet.status_code == 401
    assert form.status_code == 200 and token in form.text
    assert short.status_code == 422
    assert done.status_code == 200 and "Password set" in done.text
    assert reused.status_code == 400
    assert signed.status_code == 303 and console.status_code == 200
    assert out.status_code == 303 and after.status_code == 303  # back to the login page
