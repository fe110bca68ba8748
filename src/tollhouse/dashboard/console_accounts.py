"""The operator console's account forms on a customer's page: change the customer's plan
(the subscriptions service, as `PUT /v1/customers/{id}/subscription` does for an operator:
manual billing, no payment method asked) and invite a user (a member or admin of the
customer, who sets a password through a one-time reset link shown once on the answer)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from tollhouse.dashboard.console import back_to, customer_view, failure_detail, operator_form
from tollhouse.dashboard.web import router, runtime_of
from tollhouse.errors import InvalidInput, TollhouseError
from tollhouse.users import Role
from tollhouse.users import service as users

INVITE_ROLES = (Role.MEMBER, Role.ADMIN)
"""Roles an operator may invite a customer's user as."""


@router.post("/console/customers/{customer_id}/plan")
async def change_plan(request: Request, customer_id: str) -> Response:
    """Move the customer to the posted `plan`: an upgrade now, a downgrade at the period end
    (the subscriptions service's rules); credits the change owes are delivered at once."""
    posted = await operator_form(request)
    if isinstance(posted, Response):
        return posted
    signed, form = posted
    runtime = runtime_of(request)
    try:
        await runtime.change_plan(customer_id, form.get("plan", ""), require_payment_method=False)
    except TollhouseError as failure:
        return await customer_view(request, signed, customer_id, status=failure.status,
                                   error=failure.detail)  # fmt: skip
    return back_to(customer_id)


@router.post("/console/customers/{customer_id}/users")
async def invite(request: Request, customer_id: str) -> Response:
    """Create a user of the customer (posted `email`, `role` member or admin) without a
    password; the answer is the customer's page showing, once, the link that sets it."""
    posted = await operator_form(request)
    if isinstance(posted, Response):
        return posted
    signed, form = posted
    runtime = runtime_of(request)
    try:
        role = Role(form.get("role", ""))
        if role not in INVITE_ROLES:
            raise ValueError("role must be member or admin")
        async with runtime.db.transaction() as session:
            user = await users.create_user(
                session, email=form.get("email", ""), role=role, customer_id=customer_id,
                clock=runtime.clock,
            )  # fmt: skip
            token = await users.issue_reset(session, user.email, clock=runtime.clock)
    except (TollhouseError, ValueError) as failure:
        status = failure.status if isinstance(failure, TollhouseError) else InvalidInput.status
        return await customer_view(request, signed, customer_id, status=status,
                                   error=failure_detail(failure))  # fmt: skip
    link = f"{runtime.settings.base_url}{router.prefix}/reset?token={token}"
    return await customer_view(request, signed, customer_id, invite_link=link)
