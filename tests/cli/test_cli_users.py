"""`tollhouse users` on a migrated SQLite file: the first operator with a reset link (no
password yet) or a password from stdin, a customer's admin, the list, a new reset link; bad
input exits 1 or 2 with a message."""

from __future__ import annotations

import asyncio
import json

from tests.support.cli import Cli

from tollhouse.clock import SystemClock
from tollhouse.storage import Database
from tollhouse.users import service as users

PASSWORD = "correct horse battery"


def signs_in(cli: Cli, email: str, password: str) -> bool:
    async def main() -> bool:
        db = Database(cli.url)
        try:
            async with db.transaction() as session:
                await users.authenticate(session, email, password)
            return True
        except users.LoginFailed:
            return False
        finally:
            await db.dispose()

    return asyncio.run(main())


def reset(cli: Cli, link: str, password: str) -> None:
    async def main() -> None:
        db = Database(cli.url)
        try:
            async with db.transaction() as session:
                token = link.split("token=", 1)[1]
                await users.reset_password(session, token, password, clock=SystemClock())
        finally:
            await db.dispose()

    asyncio.run(main())


def test_an_operator_sets_its_password_through_the_printed_link(migrated: Cli) -> None:
    made = json.loads(migrated.ok("users", "create", "--operator", "--email", "Op@Example.com",
                                  "--json").stdout)  # fmt: skip
    assert (made["email"], made["role"], made["customer_id"]) == (
        "op@example.com",
        "operator",
        None,
    )
    assert made["reset_link"].startswith("http://127.0.0.1:8080/dashboard/reset?token=")
    assert not signs_in(migrated, "op@example.com", "")
    reset(migrated, made["reset_link"], PASSWORD)
    assert signs_in(migrated, "op@example.com", PASSWORD)
    again = json.loads(migrated.ok("users", "reset-link", "op@example.com", "--json").stdout)
    assert again["reset_link"] != made["reset_link"]


def test_a_customer_admin_with_a_password_from_stdin(migrated: Cli) -> None:
    customer = json.loads(migrated.ok("customers", "create", "--name", "Ada", "--json").stdout)
    result = migrated.invoke(
        "users", "create", "--customer", customer["id"], "--role", "admin",
        "--email", "ada@example.com", "--password-stdin", "--json", input=PASSWORD + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    made = json.loads(result.stdout)
    assert (made["role"], made["customer_id"], made["reset_link"]) == (
        "admin",
        customer["id"],
        None,
    )
    assert signs_in(migrated, "ada@example.com", PASSWORD)
    listed = json.loads(migrated.ok("users", "list", "--json").stdout)
    assert [u["email"] for u in listed] == ["ada@example.com"]


def test_bad_input_is_refused_with_a_message(migrated: Cli) -> None:
    migrated.ok("users", "create", "--operator", "--email", "op@example.com")
    taken = migrated.invoke("users", "create", "--operator", "--email", "op@example.com")
    bad = migrated.invoke("users", "create", "--operator", "--email", "not-an-email")
    neither = migrated.invoke("users", "create", "--email", "x@example.com")
    unknown = migrated.invoke(
        "users", "create", "--customer", "cus_nope", "--email", "y@example.com"
    )
    assert taken.exit_code == 1 and "user-exists" in taken.stderr
    assert bad.exit_code == 1 and "email" in bad.stderr
    assert neither.exit_code == 2
    assert unknown.exit_code == 1 and "customer-not-found" in unknown.stderr
