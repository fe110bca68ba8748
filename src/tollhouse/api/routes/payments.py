"""Payments: the list and one payment, manual payments and refunds (operators), and the
Stripe webhook endpoint.

A customer key reads its own payments (another customer's answers 404); operators read all,
record manual payments and refund them. The webhook takes no API key: Stripe signs it
(`Stripe-Signature`), and it answers after the event's effect is committed (a 5xx makes
Stripe deliver it again).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Header, Query, Request, Response, status
from pydantic import ConfigDict, Field

from tollhouse.api import problems
from tollhouse.api.deps import Reader, RuntimeDep, SessionDep, customer_of, require_operator
from tollhouse.api.schemas import RequestBody, ResponseBody
from tollhouse.payments import PaymentView
from tollhouse.payments import service as payments

router = APIRouter(prefix="/v1/payments", tags=["payments"])

MAX_MICROS = 10**17
Key = Field(min_length=1, max_length=128)


class RefundOut(ResponseBody):
    model_config = ConfigDict(from_attributes=True)

    id: str
    amount_micros: int
    """Money refunded by this step."""
    refunded_total_micros: int
    credits_requested_micros: int
    """The credits and bonus this step's share of the payment bought."""
    credits_reversed_micros: int
    """What the wallet still held of them and gave back."""
    unrecovered_micros: int
    """Already spent, held or expired: not taken back (the wallet never goes below 0)."""
    status: str
    """`done`, or `pending` while its credits are being taken back."""
    created_at: datetime


class PaymentOut(ResponseBody):
    model_config = ConfigDict(from_attributes=True)

    id: str
    customer_id: str
    provider: str
    """`stripe` or `manual`."""
    provider_ref: str
    kind: str
    """`credit_pack`, `credits`, `session_pack`, `plan`, `subscription` or `auto_top_up`."""
    item: str
    sessions: int | None
    amount_micros: int
    """Money paid, in micros of `currency`."""
    currency: str
    credits_micros: int
    """Credits it bought (a grant that never expires)."""
    bonus_micros: int
    bonus_expires_at: datetime | None
    status: str
    """`pending`, `succeeded` or `failed`."""
    paid_at: datetime
    checkout_id: str | None
    credits_grant_id: str | None
    bonus_grant_id: str | None
    refunded_micros: int
    description: str
    failure_reason: str | None
    created_at: datetime
    refunds: list[RefundOut]

    @classmethod
    def of(cls, view: PaymentView) -> PaymentOut:
        return cls.model_validate(
            {**_fields(view), "refunds": [RefundOut.model_validate(r) for r in view.refunds]}
        )


def _fields(view: PaymentView) -> dict[str, object]:
    return {name: getattr(view, name) for name in PaymentOut.model_fields if name != "refunds"}


class ManualPayment(RequestBody):
    customer_id: str = Field(min_length=1, max_length=32)
    pack: str | None = Field(default=None, min_length=1, max_length=64)
    """A credit pack of the catalog: its credits and its bonus are posted."""
    amount_micros: int | None = Field(default=None, gt=0, le=MAX_MICROS)
    """Or an amount paid: that many credits, no bonus."""
    idempotency_key: str = Key
    """The same key again answers the first payment (200) and posts nothing more."""
    description: str = Field(default="", max_length=500)
    """The operator's note: the bank transfer's reference, the invoice number."""


class RefundIn(RequestBody):
    amount_micros: int | None = Field(default=None, gt=0, le=MAX_MICROS)
    """Money refunded; default: all that is not refunded yet."""
    idempotency_key: str = Key


class WebhookOut(ResponseBody):
    received: bool = True
    event_id: str
    type: str
    outcome: str
    """`processed`, `duplicate` (an earlier delivery did it), `ignored` or `stale` (older
    than the last event applied to its subscription)."""
    detail: str
    payment_ids: list[str]


@router.get("", responses=problems.responses(401, 403, 404, 422))
async def list_payments(
    principal: Reader,
    session: SessionDep,
    customer_id: str | None = Query(
        default=None, max_length=32, description="Operators: one customer's (customers: omit)"
    ),
    payment_status: Literal["pending", "succeeded", "failed"] | None = Query(
        default=None, alias="status"
    ),
    limit: int = Query(default=50, ge=1, le=payments.MAX_PAGE),
    before: str | None = Query(
        default=None, max_length=32, description="page: payments older than this id"
    ),
) -> list[PaymentOut]:
    """Payments newest first: the customer's own, or for an operator everyone's (or one
    customer's)."""
    owner = customer_id if principal.is_operator else customer_of(principal, customer_id or "me")
    views = await payments.list_payments(
        session, customer_id=owner, status=payment_status, limit=limit, before=before
    )
    return [PaymentOut.of(view) for view in views]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problems.replay(PaymentOut) | problems.responses(400, 401, 403, 404, 409, 413, 422),
)
async def record_payment(
    body: ManualPayment, principal: Reader, runtime: RuntimeDep, response: Response
) -> PaymentOut:
    """Record a payment received outside Stripe (operators; provider `manual`): 201 once its
    credits (and the pack's bonus) are posted and `payment.succeeded` is written; the same
    key again answers 200 with the first payment; with other fields, 409."""
    require_operator(principal)
    view = await runtime.payments.record_manual(
        body.customer_id,
        idempotency_key=body.idempotency_key,
        pack=body.pack,
        amount_micros=body.amount_micros,
        description=body.description,
    )
    if view.replayed:
        response.status_code = status.HTTP_200_OK
    return PaymentOut.of(view)


@router.get("/{payment_id}", responses=problems.responses(401, 403, 404, 422))
async def get_payment(payment_id: str, principal: Reader, session: SessionDep) -> PaymentOut:
    """One payment with its refunds."""
    view = await payments.get_payment(session, payment_id, customer_id=principal.customer_id)
    return PaymentOut.of(view)


@router.post(
    "/{payment_id}/refund", responses=problems.responses(400, 401, 403, 404, 409, 413, 422)
)
async def refund_payment(
    payment_id: str, body: RefundIn, principal: Reader, runtime: RuntimeDep
) -> PaymentOut:
    """Refund a manual payment (operators): its refunded share of the credits and bonus is
    taken back as far as the wallet still holds them (`unrecovered_micros`: the rest). A
    Stripe payment is refunded in Stripe (409): its `charge.refunded` event does the same.
    Each refund step is documented by a credit note (`GET /v1/invoices?kind=credit_note`),
    written before this answers."""
    require_operator(principal)
    view = await runtime.payments.refund(
        payment_id, amount_micros=body.amount_micros, idempotency_key=body.idempotency_key
    )
    await runtime.bill_payments()
    return PaymentOut.of(view)


WEBHOOK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "A Stripe event, as Stripe sends it (the signature covers these bytes).",
    }
}


@router.post(
    "/stripe/webhook",
    responses=problems.responses(400, 413, 422, 503),
    openapi_extra=WEBHOOK_BODY,
)
async def stripe_webhook(
    request: Request,
    runtime: RuntimeDep,
    stripe_signature: str | None = Header(default=None, alias="Stripe-Signature"),
) -> WebhookOut:
    """Stripe's webhook endpoint (no API key: Stripe signs it). Each event is applied once
    (see the README's Payments); 400 `webhook-signature-invalid` for a missing, forged or
    stale signature; 503 `payments-not-configured` without Stripe's settings."""
    outcome = await runtime.payments.handle_stripe_webhook(await request.body(), stripe_signature)
    if outcome.type in ("charge.refunded", "invoice.paid"):
        await runtime.bill_payments()  # the credit note or the invoice paid, before the 2xx
    return WebhookOut(
        event_id=outcome.event_id,
        type=outcome.type,
        outcome=outcome.outcome,
        detail=outcome.detail,
        payment_ids=outcome.payment_ids,
    )
