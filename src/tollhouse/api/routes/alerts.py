"""Low-credit alerts: a customer's threshold, read and set.

While the balance a call's hold left is below it, gateway and `/v1/authorize` responses carry
`x-tollhouse-credits-low: true`; each downward crossing writes `credits.low` (and
`credits.depleted` at zero) to `/v1/events` once.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import Field

from tollhouse.alerts import AlertView
from tollhouse.alerts import service as alerts
from tollhouse.api import problems
from tollhouse.api.deps import Reader, RuntimeDep, SessionDep, Writer, customer_of
from tollhouse.api.schemas import RequestBody, ResponseBody
from tollhouse.customers import service as customers
from tollhouse.errors import InvalidInput, NotFound
from tollhouse.ledger import service as ledger
from tollhouse.server.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["credits"], responses=problems.responses(401, 403))

MAX_MICROS = 2**62


class CreditAlertSet(RequestBody):
    threshold_micros: int | None = Field(default=None, ge=0, le=MAX_MICROS)
    """Warn below this available balance, in micros."""
    threshold_percent: int | None = Field(default=None, ge=1, le=100)
    """Or: warn below this share of the customer's latest grant (exactly one of the two)."""


class CreditAlertOut(ResponseBody):
    customer_id: str
    threshold_micros: int | None
    threshold_percent: int | None
    effective_threshold_micros: int
    """The threshold in micros now (a percent of the latest grant, rounded down)."""
    state: str
    """`armed` (above it), `low` (below it) or `depleted` (at zero)."""
    changed_at: datetime

    @classmethod
    def of(cls, view: AlertView) -> CreditAlertOut:
        return cls(
            customer_id=view.customer_id,
            threshold_micros=view.threshold_micros,
            threshold_percent=view.threshold_percent,
            effective_threshold_micros=view.effective_threshold_micros,
            state=view.state,
            changed_at=view.changed_at,
        )


@router.get("/customers/{customer_id}/credit-alerts", responses=problems.responses(404, 422))
async def get_credit_alert(
    customer_id: str, principal: Reader, session: SessionDep
) -> CreditAlertOut:
    """The customer's low-credit alert (404 `not-found` when it has none)."""
    owner = customer_of(principal, customer_id)
    await customers.get(session, owner)
    view = await alerts.get(session, owner)
    if view is None:
        raise NotFound(f"customer '{owner}' has no credit alert")
    return CreditAlertOut.of(view)


@router.put(
    "/customers/{customer_id}/credit-alerts", responses=problems.responses(400, 404, 413, 422)
)
async def set_credit_alert(
    customer_id: str, body: CreditAlertSet, principal: Writer, runtime: RuntimeDep
) -> CreditAlertOut:
    """Set the customer's low-credit threshold: an amount or a percent of its latest grant
    (exactly one: 422 otherwise). It starts from the balance now, without an event; every
    process applies it within 2 s."""
    if (body.threshold_micros is None) == (body.threshold_percent is None):
        raise InvalidInput(
            "give exactly one of threshold_micros and threshold_percent",
            errors=[{"loc": "threshold_micros", "msg": "exactly one of the two thresholds"}],
        )
    view = await _set(runtime, customer_of(principal, customer_id), body)
    assert view is not None
    return CreditAlertOut.of(view)


@router.delete(
    "/customers/{customer_id}/credit-alerts",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems.responses(404, 422),
)
async def remove_credit_alert(customer_id: str, principal: Writer, runtime: RuntimeDep) -> None:
    """Remove the customer's low-credit alert (204 whether or not it had one)."""
    await _set(runtime, customer_of(principal, customer_id), CreditAlertSet())


async def _set(runtime: Runtime, owner: str, body: CreditAlertSet) -> AlertView | None:
    async with runtime.db.transaction() as session:
        await customers.get(session, owner)
        balance = await ledger.balance(
            session, owner, currency=runtime.catalog.currency, now=runtime.clock.now()
        )
        view = await alerts.set_alert(
            session,
            owner,
            threshold_micros=body.threshold_micros,
            threshold_percent=body.threshold_percent,
            available_micros=balance.available_micros,
            clock=runtime.clock,
        )
    await runtime.invalidate_customer(owner)
    return view
