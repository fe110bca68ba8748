"""Stripe for tests: a local server answering the few API endpoints tollhouse calls with
Stripe-shaped JSON (Stripe's servers cannot be reached here), and webhook events signed
exactly as Stripe signs them.

| endpoint | answer |
| --- | --- |
| `POST /v1/customers` | a customer `cus_test_...` |
| `POST /v1/checkout/sessions` | an open Checkout Session `cs_test_...` with its `url` |
| `GET /v1/payment_methods?customer=&type=card` | the cards saved with `save_card` (newest first) |
| `POST /v1/payment_intents` | `succeeded`, or a 402 `card_error` for a customer in `declining` |

Requests arrive form-encoded with brackets (`metadata[tollhouse_checkout]=chk_...`), as the
library sends them; `requests` keeps each one decoded. A POST with an `Idempotency-Key`
seen before gets the first answer again, as Stripe does.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

WEBHOOK_SECRET = "whsec_test_tollhouse"
API_KEY = "sk_test_tollhouse"


@dataclass
class Seen:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None


def nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracketed form fields as nested dicts (lists as dicts keyed by index)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return root


@dataclass
class FakeStripe:
    """Start with `await start()`; `base_url` is what `TOLLHOUSE_STRIPE_API_BASE` takes."""

    requests: list[Seen] = field(default_factory=list)
    cards: dict[str, list[str]] = field(default_factory=dict)
    declining: set[str] = field(default_factory=set)
    """Stripe customers whose off-session charges are declined."""
    port: int = 0
    _runner: web.AppRunner | None = None
    _answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/customers", self._customer)
        app.router.add_post("/v1/checkout/sessions", self._checkout_session)
        app.router.add_get("/v1/payment_methods", self._payment_methods)
        app.router.add_post("/v1/payment_intents", self._payment_intent)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def save_card(self, stripe_customer: str) -> str:
        """Save a card for the customer (as a checkout with `setup_future_usage` does)."""
        card = self._id("pm")
        self.cards.setdefault(stripe_customer, []).insert(0, card)
        return card

    def posted(self, path: str) -> list[Seen]:
        return [seen for seen in self.requests if seen.method == "POST" and seen.path == path]

    def _id(self, prefix: str) -> str:
        return f"{prefix}_test_{next(self._ids):06d}"

    async def _seen(self, request: web.Request) -> Seen:
        body = await request.text()
        params = nested(parse_qsl(body or request.query_string, keep_blank_values=True))
        if request.method == "GET":
            params = nested(list(request.query.items()))
        seen = Seen(request.method, request.path, params, request.headers.get("Idempotency-Key"))
        self.requests.append(seen)
        return seen

    async def _answer(self, request: web.Request, make: Any) -> web.Response:
        seen = await self._seen(request)
        key = seen.idempotency_key
        if key is not None and key in self._answers:
            status, body = self._answers[key]
        else:
            status, body = make(seen.params)
            if key is not None:
                self._answers[key] = (status, body)
        return web.json_response(body, status=status, headers={"Request-Id": self._id("req")})

    async def _customer(self, request: web.Request) -> web.Response:
        def make(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            return 200, {
                "id": self._id("cus"),
                "object": "customer",
                "name": params.get("name"),
                "email": params.get("email"),
                "metadata": params.get("metadata", {}),
            }

        return await self._answer(request, make)

    async def _checkout_session(self, request: web.Request) -> web.Response:
        def make(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            session_id = self._id("cs")
            return 200, {
                "id": session_id,
                "object": "checkout.session",
                "mode": params.get("mode"),
                "customer": params.get("customer"),
                "client_reference_id": params.get("client_reference_id"),
                "metadata": params.get("metadata", {}),
                "status": "open",
                "payment_status": "unpaid",
                "url": f"https://checkout.stripe.com/c/pay/{session_id}",
                "expires_at": int(time.time()) + 86_400,
            }

        return await self._answer(request, make)

    async def _payment_methods(self, request: web.Request) -> web.Response:
        seen = await self._seen(request)
        cards = self.cards.get(str(seen.params.get("customer")), [])
        data = [{"id": card, "object": "payment_method", "type": "card"} for card in cards[:1]]
        return web.json_response(
            {"object": "list", "data": data, "has_more": False, "url": "/v1/payment_methods"}
        )

    async def _payment_intent(self, request: web.Request) -> web.Response:
        def make(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            intent = {
                "id": self._id("pi"),
                "object": "payment_intent",
                "amount": int(params["amount"]),
                "currency": params["currency"],
                "customer": params["customer"],
                "payment_method": params.get("payment_method"),
                "metadata": params.get("metadata", {}),
                "status": "succeeded",
            }
            if params["customer"] in self.declining:
                intent["status"] = "requires_payment_method"
                return 402, {
                    "error": {
                        "type": "card_error",
                        "code": "card_declined",
                        "decline_code": "insufficient_funds",
                        "message": "Your card has insufficient funds.",
                        "payment_intent": intent,
                    }
                }
            return 200, intent

        return await self._answer(request, make)


def sign(payload: str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe sends: `t=<ts>,v1=<hex HMAC-SHA256 of
    "<ts>.<payload>" under the endpoint's secret>` (docs.stripe.com/webhooks#verify-manually)."""
    at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{at}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


_events = itertools.count(1)


def event(
    type: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None
) -> str:
    """A Stripe event's JSON payload around `obj`."""
    return json.dumps(
        {
            "id": event_id or f"evt_test_{next(_events):08d}",
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": int(time.time()) if created is None else created,
            "type": type,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": obj},
        }
    )


def checkout_completed(
    checkout: Any, *, payment_intent: str | None = None, paid: bool = True
) -> dict[str, Any]:
    """The Checkout Session object of `checkout.session.completed` for a tollhouse checkout
    (a `CheckoutView` or its JSON)."""

    def get(name: str) -> Any:
        return checkout[name] if isinstance(checkout, dict) else getattr(checkout, name)

    minor = get("price_micros") // 10_000
    obj: dict[str, Any] = {
        "id": get("provider_session_id"),
        "object": "checkout.session",
        "mode": get("mode"),
        "client_reference_id": get("customer_id"),
        "metadata": {"tollhouse_checkout": get("id"), "tollhouse_customer": get("customer_id")},
        "status": "complete",
        "payment_status": "paid" if paid else "unpaid",
        "amount_total": minor,
        "currency": get("currency"),
    }
    if get("mode") == "subscription":
        obj["subscription"] = f"sub_test_{get('id')[-8:]}"
    else:
        obj["payment_intent"] = payment_intent or f"pi_test_{get('id')[-8:]}"
    return obj


def invoice(
    subscription: str, *, invoice_id: str, amount: int = 2900, customer: str | None = None
) -> dict[str, Any]:
    """An invoice of a subscription (the 2025+ shape: `parent.subscription_details`)."""
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": customer,
        "currency": "usd",
        "amount_due": amount,
        "amount_paid": amount,
        "parent": {"type": "subscription_details", "subscription_details": {
            "subscription": subscription, "metadata": {},
        }},
    }  # fmt: skip


def subscription(
    subscription_id: str, *, customer_id: str, status: str, plan: str = "pro"
) -> dict[str, Any]:
    """A subscription object tollhouse made through a checkout (its metadata names both)."""
    return {
        "id": subscription_id,
        "object": "subscription",
        "status": status,
        "customer": None,
        "metadata": {"tollhouse_customer": customer_id, "tollhouse_plan": plan},
    }


def charge_refunded(payment_intent: str, *, amount: int, refunded: int) -> dict[str, Any]:
    """A charge of `amount` cents of which `refunded` cents are refunded so far."""
    return {
        "id": f"ch_{payment_intent}",
        "object": "charge",
        "payment_intent": payment_intent,
        "amount": amount,
        "amount_refunded": refunded,
        "currency": "usd",
        "refunded": refunded == amount,
    }
