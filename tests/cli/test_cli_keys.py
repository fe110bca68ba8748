"""`tollhouse keys`: create (the secret printed whole, once), list, narrow terminals and pipes,
rotate, generate; driven in-process on a SQLite file (see `tests.support.cli`)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from pydantic import SecretStr
from tests.support.cli import Cli

from tollhouse.clock import SystemClock
from tollhouse.config import Settings
from tollhouse.keys import InvalidKey, KeyAuthenticator, parse_key
from tollhouse.server.bootstrap import bootstrap
from tollhouse.storage import Database


class TestKeys:
    def test_created_key_secret_is_printed_but_only_its_prefix_is_stored(
        self, migrated: Cli
    ) -> None:
        customer_id = migrated.customer()

        created = migrated.json("keys", "create", "--customer", customer_id)

        secret = created["key"]
        assert secret.startswith("th_live_")
        assert created["customer_id"] == customer_id
        assert secret.startswith(created["prefix"])
        stored = migrated.stored_bytes()
        assert created["prefix"].encode() in stored  # the read sees the key's row...
        assert secret.encode() not in stored  # ...but never the secret
        assert secret[len(created["prefix"]) :].encode() not in stored

    def test_created_key_carries_its_in_flight_cap(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        created = migrated.json("keys", "create", "--customer", customer_id, "--max-in-flight", "4")

        assert created["max_in_flight"] == 4
        listed = migrated.json("keys", "list", "--customer", customer_id)
        assert [k["max_in_flight"] for k in listed] == [4]

    def test_list_shows_the_customers_keys_without_secrets(self, migrated: Cli) -> None:
        customer_id = migrated.customer()
        created = migrated.json("keys", "create", "--customer", customer_id, "--name", "laptop")

        listed = migrated.json("keys", "list", "--customer", customer_id)

        assert [(k["id"], k["name"], k["revoked_at"]) for k in listed] == [
            (created["id"], "laptop", None)
        ]
        assert created["key"] not in json.dumps(listed)

    def test_revoked_key_no_longer_authenticates(self, migrated: Cli) -> None:
        customer_id = migrated.customer()
        created = migrated.json("keys", "create", "--customer", customer_id)
        assert authenticates(migrated.url, created["key"])

        revoked = migrated.json("keys", "revoke", created["id"])

        assert revoked["revoked_at"] is not None
        assert migrated.json("keys", "list", "--customer", customer_id)[0]["revoked_at"] is not None
        assert not authenticates(migrated.url, created["key"])

    def test_operator_key_has_no_customer_and_every_scope(self, migrated: Cli) -> None:
        created = migrated.json("keys", "create", "--operator", "--scopes", "read,write,admin")

        assert created["customer_id"] is None
        assert set(created["scopes"]) == {"admin", "read", "write"}
        assert [k["id"] for k in migrated.json("keys", "list")] == [created["id"]]

    def test_key_for_an_unknown_customer_exits_1_and_stores_nothing(self, migrated: Cli) -> None:
        result = migrated.invoke("keys", "create", "--customer", "cus_missing")

        assert result.exit_code == 1
        assert "cus_missing" in result.stderr
        assert migrated.rows("SELECT count(*) FROM api_keys") == [(0,)]

    def test_key_needs_exactly_one_owner(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        neither = migrated.invoke("keys", "create")
        both = migrated.invoke("keys", "create", "--customer", customer_id, "--operator")

        assert (neither.exit_code, both.exit_code) == (2, 2)
        assert "exactly one of --customer or --operator" in neither.stderr
        assert migrated.rows("SELECT count(*) FROM api_keys") == [(0,)]

    def test_revoking_an_unknown_key_exits_1(self, migrated: Cli) -> None:
        result = migrated.invoke("keys", "revoke", "key_missing")

        assert result.exit_code == 1
        assert "key_missing" in result.stderr

    def test_create_prints_the_secret_alone_on_its_own_line(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        lines = migrated.ok("keys", "create", "--customer", customer_id).stdout.splitlines()

        secrets = [line for line in lines if line.startswith("th_live_")]
        assert len(secrets) == 1
        assert re.fullmatch(r"th_live_[0-9A-Za-z]{28}", secrets[0])
        assert authenticates(migrated.url, secrets[0])

    def test_create_as_json_is_one_document_with_times_as_the_api_writes_them(
        self, migrated: Cli
    ) -> None:
        customer_id = migrated.customer()

        created = migrated.json(
            "keys", "create", "--customer", customer_id, "--expires-in-days", "1"
        )

        assert API_TIME.fullmatch(created["created_at"])
        assert API_TIME.fullmatch(created["expires_at"])
        assert authenticates(migrated.url, created["key"])


API_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
"""A UTC time as the API (pydantic) writes it: `2026-03-15T12:00:00Z`, fractions if any."""


def piped(cli: Cli, *args: str, columns: int = 40) -> str:
    """Run `tollhouse *args` in a child process whose stdout is a pipe, `COLUMNS` wide."""
    result = subprocess.run(
        [sys.executable, "-m", "tollhouse.cli.main", *args],
        cwd=cli.directory,
        env={**os.environ, "COLUMNS": str(columns)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


class TestNarrowOutput:
    """`COLUMNS=40` with stdout piped: every id, key and time printed whole, on one line."""

    def test_created_key_and_its_secret_are_printed_whole(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        lines = piped(migrated, "keys", "create", "--customer", customer_id).splitlines()

        secret = next(line for line in lines if line.startswith("th_"))
        assert re.fullmatch(r"th_live_[0-9A-Za-z]{28}", secret)
        assert any(line.split() == ["customer_id", customer_id] for line in lines)
        assert "…" not in "".join(lines)
        assert authenticates(migrated.url, secret)

    def test_key_list_prints_ids_and_times_whole(self, migrated: Cli) -> None:
        customer_id = migrated.customer()
        created = migrated.json(
            "keys", "create", "--customer", customer_id, "--expires-in-days", "3"
        )

        output = piped(migrated, "keys", "list", "--customer", customer_id)

        rows = [line.split() for line in output.splitlines()]
        assert ["id", created["id"]] in rows
        assert ["prefix", created["prefix"]] in rows
        assert ["expires_at", created["expires_at"]] in rows
        assert "…" not in output

    def test_customer_list_prints_times_as_the_api_writes_them(self, migrated: Cli) -> None:
        customer_id = migrated.customer()
        created_at = migrated.json("customers", "list")[0]["created_at"]

        output = piped(migrated, "customers", "list")

        rows = [line.split() for line in output.splitlines()]
        assert ["id", customer_id] in rows
        assert ["created_at", created_at] in rows
        assert API_TIME.fullmatch(created_at)

    def test_a_table_that_fits_is_printed_as_a_table(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        output = piped(migrated, "customers", "list", columns=200)

        assert "┃ id" in output
        assert customer_id in output


class TestKeyRotation:
    def test_rotate_issues_a_successor_and_the_old_key_works_for_24_hours(
        self, migrated: Cli
    ) -> None:
        customer_id = migrated.customer()
        old = migrated.json("keys", "create", "--customer", customer_id, "--name", "prod")

        rotated = migrated.json("keys", "rotate", old["id"])

        assert rotated["previous_key_id"] == old["id"]
        assert (rotated["name"], rotated["customer_id"]) == ("prod", customer_id)
        grace = datetime.fromisoformat(rotated["previous_key_expires_at"]) - datetime.fromisoformat(
            rotated["created_at"]
        )
        assert grace == timedelta(hours=24)
        listed = {k["id"]: k for k in migrated.json("keys", "list", "--customer", customer_id)}
        assert listed[old["id"]]["successor_id"] == rotated["id"]
        assert authenticates(migrated.url, old["key"])
        assert authenticates(migrated.url, rotated["key"])

    def test_rotate_with_zero_grace_stops_the_old_key(self, migrated: Cli) -> None:
        customer_id = migrated.customer()
        old = migrated.json("keys", "create", "--customer", customer_id)

        rotated = migrated.json("keys", "rotate", old["id"], "--grace-seconds", "0")

        assert not authenticates(migrated.url, old["key"])
        assert authenticates(migrated.url, rotated["key"])

    def test_rotate_prints_the_successor_alone_on_its_own_line(self, migrated: Cli) -> None:
        customer_id = migrated.customer()
        old = migrated.json("keys", "create", "--customer", customer_id)

        lines = migrated.ok("keys", "rotate", old["id"]).stdout.splitlines()

        secrets = [line for line in lines if line.startswith("th_live_")]
        assert len(secrets) == 1
        assert authenticates(migrated.url, secrets[0])

    def test_rotating_a_rotated_key_exits_1_naming_why(self, migrated: Cli) -> None:
        customer_id = migrated.customer()
        old = migrated.json("keys", "create", "--customer", customer_id)
        migrated.json("keys", "rotate", old["id"])

        result = migrated.invoke("keys", "rotate", old["id"])

        assert result.exit_code == 1
        assert "key-not-rotatable" in result.stderr
        assert "rotated" in result.stderr
        assert migrated.rows("SELECT count(*) FROM api_keys") == [(2,)]


class TestKeysGenerate:
    def test_generate_prints_one_well_formed_key_and_stores_nothing(self, migrated: Cli) -> None:
        output = migrated.ok("keys", "generate").stdout

        key = output.strip()
        assert output == key + "\n"
        assert parse_key(key).env == "live"
        assert migrated.rows("SELECT count(*) FROM api_keys") == [(0,)]

    def test_env_comes_from_the_option_or_the_settings(
        self, cli: Cli, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        given = cli.ok("keys", "generate", "--env", "staging").stdout.strip()
        monkeypatch.setenv("TOLLHOUSE_KEY_ENV", "test")
        configured = cli.ok("keys", "generate").stdout.strip()

        assert parse_key(given).env == "staging"
        assert parse_key(configured).env == "test"

    def test_generate_as_json_is_one_document(self, cli: Cli) -> None:
        generated = cli.json("keys", "generate")

        assert parse_key(generated["key"]).env == "live"

    def test_bad_env_exits_2(self, cli: Cli) -> None:
        result = cli.invoke("keys", "generate", "--env", "Prod")

        assert result.exit_code == 2
        assert "1..12 characters" in result.stderr
        assert result.stdout == ""

    def test_generated_key_is_installed_as_the_bootstrap_operator_key(self, cli: Cli) -> None:
        generated = cli.ok("keys", "generate").stdout.strip()
        settings = Settings(
            database_url=cli.url,
            bootstrap_key=SecretStr(generated),
            _env_file=None,  # type: ignore[call-arg]
        )

        installed = asyncio.run(bootstrap(settings))

        assert installed == generated
        assert authenticates(cli.url, generated)


def authenticates(url: str, raw_key: str) -> bool:
    """Whether a fresh authenticator (no cache) accepts `raw_key` in the database at `url`."""

    async def check() -> bool:
        db = Database(url)
        try:
            await KeyAuthenticator(db, secret=b"", clock=SystemClock()).authenticate(raw_key)
            return True
        except InvalidKey:
            return False
        finally:
            await db.dispose()

    return asyncio.run(check())
