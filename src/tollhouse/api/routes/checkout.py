"""Checkout (a Stripe page to pay a credit pack, a session pack or a plan) and auto top-up.

A customer key acts for its own customer; an operator key names it (`customer_id`). Both
answer 503 `payments-not-configured` without Stripe's settings.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response, status
from pydantic import ConfigDict, Field, model_validator

from tollhouse.api import problems
from tollhouse.api.deps import ME, Reader, RuntimeDep, SessionDep, Writer, customer_of
from tollhouse.api.schemas import RequestBody, ResponseBody
from tollhouse.customers import service as customers
from tollhouse.errors import InvalidInput
from tollhouse.keys import Principal
from tollhouse.payments import AutoTopUpView, CheckoutView
from tollhouse.payments import service as payments

router = APIRouter(prefix="/v1", tags=["payments"], responses=problems.responses(401, 403))

MAX_MICROS = 10**17
Url = Field(default=None, min_length=8, max_length=2000, pattern=r"^https?://\S+$")


class SessionPackItem(RequestBody):
    product: str = Field(min_length=1, max_length=64)
    sessions: int = Field(ge=1, le=1_000_000)
    """One of the product's pack sizes."""


class CheckoutIn(RequestBody):
    credit_pack: str | None = Field(default=None, min_length=1, max_length=64)
    """A credit pack of the catalog."""
    session_pack: SessionPackItem | None = None
    """Or a session product's pack."""
    plan: str | None = Field(default=None, min_length=1, max_length=64)
    """Or a paid plan: a Stripe subscription (a one-off plan is paid once)."""
    success_url: str | None = Url
    """Where Stripe sends the customer after paying (default `TOLLHOUSE_CHECKOUT_SUCCESS_URL`)."""
    cancel_url: str | None = Url
    """Where Stripe sends the customer who goes back (default `TOLLHOUSE_CHECKOUT_CANCEL_URL`)."""
    idempotency_key: str = Field(min_length=1, max_length=128)
    """The same key again answers the same checkout (200); for another item, 422
    `idempotency-key-reused`."""
    customer_id: str | None = Field(default=None, max_length=32)
    """Operator keys name the customer."""

    @model_validator(mode="after")
    def _one_item(self) -> CheckoutIn:
        if sum(item is not None for item in (self.credit_pack, self.session_pack, self.plan)) != 1:
            raise ValueError("give exactly one of credit_pack, session_pack and plan")
        return self

    def item(self) -> payments.Item:
        if self.credit_pack is not None:
            return payments.Item("credit_pack", self.credit_pack)
        if self.session_pack is not None:
            return payments.Item(
                "session_pack", self.session_pack.product, self.session_pack.sessions
            )
        assert self.plan is not None
        return payments.Item("plan", self.plan)


class CheckoutOut(ResponseBody):
    model_config = ConfigDict(from_attributes=True)

    id: str
    customer_id: str
    provider: str
    kind: str
    """`credit_pack`, `session_pack` or `plan`."""
    item: str
    sessions: int | None
    price_micros: int
    """What the page charges (per period for a subscription), micros of `currency`."""
    credits_micros: int
    bonus_micros: int
    currency: str
    mode: str
    """`payment` or `subscription`."""
    status: str
    """`creating`, `open`, `completed` or `expired`."""
    url: str | None
    """Send the customer here to pay."""
    provider_session_id: str | None
    created_at: datetime
    expires_at: datetime | None
    completed_at: datetime | None


class AutoTopUpIn(RequestBody):
    enabled: bool
    threshold_micros: int = Field(ge=0, le=MAX_MICROS)
    """Buy the pack when a debit takes the available balance below this."""
    pack: str = Field(min_length=1, max_length=64)
    """The credit pack bought, charged off-session on the card saved with Stripe."""


class AutoTopUpOut(ResponseBody):
    model_config = ConfigDict(from_attributes=True)

    customer_id: str
    enabled: bool
    threshold_micros: int
    pack: str
    armed: bool
    """True: the next debit below the threshold buys the pack (once per crossing)."""
    fired_count: int
    last_fired_at: datetime | None
    last_payment_id: str | None
    last_error: str | None


def _owner(principal: Principal, customer_id: str | None) -> str:
    if principal.is_operator and customer_id is None:
        raise InvalidInput(
            "operator keys must name the customer_id",
            errors=[{"loc": "customer_id", "msg": "required with an operator key"}],
        )
    return customer_of(principal, customer_id or ME)


@router.post(
    "/checkout",
    status_code=status.HTTP_201_CREATED,
    responses=problems.replay(CheckoutOut) | problems.responses(400, 404, 409, 413, 422, 502, 503),
)
async def create_checkout(
    body: CheckoutIn, principal: Writer, runtime: RuntimeDep, response: Response
) -> CheckoutOut:
    """Open a Stripe Checkout page for a credit pack, a session pack or a plan: 201 with its
    `url`. Once paid, Stripe's webhook posts the credits (and bonus), buys the session pack
    or subscribes the customer; a card saved with it is a payment method on file."""
    owner = _owner(principal, body.customer_id)
    settings = runtime.settings
    success = body.success_url or settings.checkout_success_url
    cancel = body.cancel_url or settings.checkout_cancel_url or success
    if success is None or cancel is None:
        msg = "required (or set TOLLHOUSE_CHECKOUT_SUCCESS_URL)"
        raise InvalidInput(f"success_url: {msg}", errors=[{"loc": "success_url", "msg": msg}])
    view = await runtime.payments.checkout(
        owner, body.item(), success_url=success, cancel_url=cancel,
        idempotency_key=body.idempotency_key,
    )  # fmt: skip
    if view.replayed:
        response.status_code = status.HTTP_200_OK
    return _checkout_out(view)


@router.get("/checkout/{checkout_id}", responses=problems.responses(404, 422))
async def get_checkout(checkout_id: str, principal: Reader, session: SessionDep) -> CheckoutOut:
    """One checkout: its status (`completed` once paid) and URL."""
    view = await payments.get_checkout(session, checkout_id, customer_id=principal.customer_id)
    return _checkout_out(view)


def _checkout_out(view: CheckoutView) -> CheckoutOut:
    return CheckoutOut.model_validate(view)


@router.get("/customers/{customer_id}/auto-top-up", responses=problems.responses(404, 422))
async def get_auto_top_up(customer_id: str, principal: Reader, session: SessionDep) -> AutoTopUpOut:
    """The customer's auto top-up rule (disabled, threshold 0, when it never set one)."""
    owner = customer_of(principal, customer_id)
    await customers.get(session, owner)
    rule = await payments.get_rule(session, owner)
    if rule is None:
        return AutoTopUpOut(
            customer_id=owner, enabled=False, threshold_micros=0, pack="", armed=False,
            fired_count=0, last_fired_at=None, last_payment_id=None, last_error=None,
        )  # fmt: skip
    return _rule_out(rule)


@router.put(
    "/customers/{customer_id}/auto-top-up",
    responses=problems.responses(400, 402, 404, 413, 422, 503),
)
async def set_auto_top_up(
    customer_id: str, body: AutoTopUpIn, principal: Reader, runtime: RuntimeDep
) -> AutoTopUpOut:
    """Buy `pack` off-session whenever a debit takes the wallet below `threshold_micros`,
    once per crossing (customers: `admin` scope). Enabling needs a card saved with Stripe
    (402 `payment-method-required`: complete a checkout first)."""
    if not principal.is_operator:
        principal.require("admin")
    owner = customer_of(principal, customer_id)
    rule = await runtime.payments.set_auto_top_up(
        owner, enabled=body.enabled, threshold_micros=body.threshold_micros, pack=body.pack
    )
    return _rule_out(rule)


def _rule_out(rule: AutoTopUpView) -> AutoTopUpOut:
    return AutoTopUpOut.model_validate(rule)
