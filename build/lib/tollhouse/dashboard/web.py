"""Signing in and out, password resets, and what every page shares: the session cookie, the
CSRF check of every form, the templates.

The session cookie (`th_session`: `HttpOnly`, `SameSite=Lax`, `Secure` unless
`TOLLHOUSE_SECURE_COOKIES=false`, path `/dashboard`) carries a random token whose SHA-256
digest names a `user_sessions` row; signing out deletes the row. Every form posts the
session's `csrf_token` (the login form a token of its own, double-submitted in the
`th_login` cookie), compared in constant time: a form from another site cannot post.
Sign-in attempts are rate limited with tollhouse's own limiter (`LOGIN_LIMIT` per email and
per client address): 429 with `Retry-After` beyond it. Pages are sent with a strict CSP:
every script and style is tollhouse's own file.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime
from math import ceil
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from tollhouse.errors import TollhouseError
from tollhouse.money import format_amount
from tollhouse.ratelimit import Limit
from tollhouse.server.runtime import Runtime
from tollhouse.users import LoginFailed, SignedIn
from tollhouse.users import service as users

router = APIRouter(prefix="/dashboard", include_in_schema=False)
STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "th_session"
LOGIN_COOKIE = "th_login"
LOGIN_LIMIT = Limit.per_minute(10, "dashboard-login")
"""Sign-in attempts per email, and per client address, per minute."""
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("tollhouse.dashboard"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
    )
    env.filters["money"] = format_amount
    return env


ENV = _environment()


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def page(
    request: Request,
    template: str,
    signed: SignedIn | None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    """`template` rendered for `signed`'s user, with the page's security headers."""
    zone = ZoneInfo(signed.user.time_zone) if signed is not None else ZoneInfo("UTC")

    def local(moment: datetime | None) -> str:
        return "" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")

    html = ENV.get_template(template).render(
        user=signed.user if signed else None,
        csrf_token=signed.csrf_token if signed else "",
        currency=runtime_of(request).catalog.currency,
        local=local,
        **values,
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["content-security-policy"] = CSP
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["referrer-policy"] = "same-origin"
    response.headers["cache-control"] = "no-store"
    return response


async def viewer(request: Request) -> SignedIn | None:
    """The signed-in session of the request's cookie (its expiry moved on), or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    runtime = runtime_of(request)
    async with runtime.db.transaction() as session:
        return await users.signed_in(session, token, clock=runtime.clock)


def to_login() -> RedirectResponse:
    return RedirectResponse("/dashboard/login", status_code=303)


def same(a: str, b: str) -> bool:
    """Constant-time string equality (for tokens)."""
    return hmac.compare_digest(a.encode(), b.encode())


async def form_of(request: Request, signed: SignedIn) -> Mapping[str, str] | None:
    """The posted form, or None when its `csrf_token` is not the session's."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    return values if same(values.get("csrf_token", ""), signed.csrf_token) else None


def forbidden(request: Request, signed: SignedIn | None) -> HTMLResponse:
    return page(request, "message.html", signed, status=403, title="Not allowed",
                message="This form expired or came from elsewhere: reload the page and try again.")  # fmt: skip


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/dashboard", httponly=True, samesite="lax",
        secure=runtime_of(request).settings.secure_cookies,
    )  # fmt: skip


@router.get("")
async def home(request: Request) -> Response:
    signed = await viewer(request)
    if signed is None:
        return to_login()
    return RedirectResponse(
        "/dashboard/console" if signed.user.is_operator else "/dashboard/portal", status_code=303
    )


@router.get("/login")
async def login_form(request: Request) -> Response:
    token = secrets.token_urlsafe(32)
    response = page(request, "login.html", None, login_token=token, error="")
    _cookie(response, request, LOGIN_COOKIE, token, 3600)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    posted = str(form.get("login_token", ""))
    if not posted or not same(posted, request.cookies.get(LOGIN_COOKIE, "")):
        return forbidden(request, None)
    runtime = runtime_of(request)
    client = request.client.host if request.client else "unknown"
    for subject in (email.strip().lower(), client):
        hit = await runtime.limiter.hit(LOGIN_LIMIT, "login", subject)
        if not hit.allowed:
            wait = max(1, ceil(hit.retry_after_seconds))
            refused = page(request, "login.html", None, status=429, login_token=posted,
                           error=f"Too many attempts: try again in {wait} s.")  # fmt: skip
            refused.headers["retry-after"] = str(wait)
            return refused
    try:
        async with runtime.db.transaction() as session:
            user = await users.authenticate(session, email, password)
            signed = await users.sign_in(session, user, clock=runtime.clock)
    except (LoginFailed, TollhouseError):
        return page(request, "login.html", None, status=401, login_token=posted,
                    error="Wrong email or password.")  # fmt: skip
    response = RedirectResponse("/dashboard", status_code=303)
    _cookie(response, request, SESSION_COOKIE, signed.token, users.SESSION_SECONDS)
    response.delete_cookie(LOGIN_COOKIE, path="/dashboard")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    signed = await viewer(request)
    if signed is None:
        return to_login()
    if await form_of(request, signed) is None:
        return forbidden(request, signed)
    runtime = runtime_of(request)
    async with runtime.db.transaction() as session:
        await users.sign_out(session, signed.token)
    response = to_login()
    response.delete_cookie(SESSION_COOKIE, path="/dashboard")
    return response


@router.get("/reset")
async def reset_form(request: Request, token: str = "") -> Response:
    return page(request, "reset.html", None, token=token, error="")


@router.post("/reset")
async def reset(request: Request) -> Response:
    form = await request.form()
    token, password = str(form.get("token", "")), str(form.get("password", ""))
    runtime = runtime_of(request)
    try:
        async with runtime.db.transaction() as session:
            await users.reset_password(session, token, password, clock=runtime.clock)
    except TollhouseError as error:
        return page(request, "reset.html", None, status=error.status, token=token,
                    error=error.detail)  # fmt: skip
    return page(request, "message.html", None, title="Password set",
                message="Your password is set: sign in with it.")  # fmt: skip
