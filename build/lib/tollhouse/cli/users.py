"""`tollhouse users create|list|reset-link`: dashboard logins."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import typer

from tollhouse.cli.common import JsonOption, Services, emit, run
from tollhouse.errors import InvalidInput
from tollhouse.users import Role
from tollhouse.users import service as users

users_app = typer.Typer(
    help="Dashboard users: operators and customers' members.", no_args_is_help=True
)
COLUMNS = ["id", "email", "role", "customer_id", "disabled", "created_at"]
RESET_PATH = "/dashboard/reset"


def _view(view: users.UserView) -> dict[str, Any]:
    return {**dataclasses.asdict(view), "role": view.role.value}


@users_app.command("create")
def create(
    email: str = typer.Option(..., help="The login."),
    operator: bool = typer.Option(False, "--operator", help="An operator (the console)."),
    customer: str | None = typer.Option(None, help="The customer of a member or admin."),
    role: Role = typer.Option(Role.MEMBER, help="member or admin (with --customer)."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin; else print a reset link."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a dashboard user: `--operator` for the console (the first one is made here), or
    a `member`/`admin` of `--customer`. Without `--password-stdin`, prints a one-time link
    where the user sets its password."""
    if operator and customer is not None:
        raise typer.BadParameter("an operator belongs to no customer")
    if not operator and customer is None:
        raise typer.BadParameter("give --operator, or --customer for a member or admin")
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            view = await users.create_user(
                session, email=email, role=Role.OPERATOR if operator else role,
                customer_id=customer, password=password, clock=svc.clock,
            )  # fmt: skip
            link = None if password else await _link(svc, session, view.email)
        return {**_view(view), "reset_link": link}

    emit(run(job), as_json, columns=[*COLUMNS, "reset_link"])


@users_app.command("list")
def list_(
    customer: str | None = typer.Option(None, help="Only this customer's users."),
    as_json: bool = JsonOption,
) -> None:
    """Dashboard users by email."""

    async def job(svc: Services) -> list[dict[str, Any]]:
        async with svc.db.transaction() as session:
            return [_view(v) for v in await users.list_users(session, customer_id=customer)]

    emit(run(job), as_json, columns=COLUMNS)


@users_app.command("reset-link")
def reset_link(email: str, as_json: bool = JsonOption) -> None:
    """A one-time link (24 h) where EMAIL's user sets a new password."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            return {"email": email, "reset_link": await _link(svc, session, email)}

    emit(run(job), as_json, columns=["email", "reset_link"])


async def _link(svc: Services, session: Any, email: str) -> str:
    if not svc.settings.dashboard:
        raise InvalidInput("the dashboard is switched off (TOLLHOUSE_DASHBOARD=false)")
    token = await users.issue_reset(session, email, clock=svc.clock)
    return f"{svc.settings.base_url}{RESET_PATH}?token={token}"
