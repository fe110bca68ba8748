"""The `tollhouse` command, driven in-process with Typer's CliRunner against a SQLite file.

Every test starts in its own directory with `TOLLHOUSE_DATABASE_URL` naming a file there and no
other `TOLLHOUSE_*` variable, and clears the cached settings before and after. Tests are plain
`def`: the CLI runs its own event loop with `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from tests.support.catalog import write_catalog
from typer.testing import CliRunner, Result

import tollhouse.catalog
from tollhouse.cli.main import app
from tollhouse.clock import SystemClock
from tollhouse.config import Settings, get_settings
from tollhouse.keys import InvalidKey, KeyAuthenticator, parse_key
from tollhouse.metering import UsageEventIn, UsageRecorder
from tollhouse.server.bootstrap import bootstrap
from tollhouse.storage import Database

BUILTIN_CATALOG = Path(tollhouse.catalog.__file__).with_name("builtin.yaml")
GRANT_MICROS = 2_500_000
"""`credits grant ID 2.50` in micros (1 USD = 1,000,000)."""

BROKEN_CATALOG = """\
version: "broken"
currency: usd
default_plan: free
plans:
  free: {rank: 0, price: "0"}
categories:
  text: {requests_per_minute: 5}
upstreams:
  local: {base_url: "http://127.0.0.1:9/v1"}
models:
  good-model: {category: text, upstream: local, price: {per_request: "0.01"}}
  bad-model: {category: no-such-category, upstream: local, price: {per_request: "0.01"}}
"""


MANY_PROBLEMS_CATALOG = """\
version: "many"
default_plan: free
plans:
  free: {rank: 0, price: "0", trial_dayz: 3}
  pro: {rank: 0, price: "29.00"}
categories:
  text: {requests_per_minute: 5}
upstreams:
  local: {base_url: "http://127.0.0.1:9/v1"}
models:
  chat: {category: txt, upstream: local}
"""
"""A typo'd key (`trial_dayz`), a duplicate rank and an unknown category, in that order."""
MANY_PROBLEMS = ["plans.free.trial_dayz", "plans.pro.rank", "models.chat.category"]


class Cli:
    """Invoke `tollhouse` in-process on one SQLite file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.db_path = directory / "cli.db"
        self.url = f"sqlite+aiosqlite:///{self.db_path}"
        self.runner = CliRunner()

    def invoke(self, *args: str) -> Result:
        get_settings.cache_clear()
        return self.runner.invoke(app, list(args))

    def ok(self, *args: str) -> Result:
        """Invoke and fail the test unless the command exits 0."""
        result = self.invoke(*args)
        assert result.exit_code == 0, (args, result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        """Invoke with `--json` and parse the one JSON document on stdout."""
        return json.loads(self.ok(*args, "--json").stdout)

    def customer(self, name: str = "Ada") -> str:
        return str(self.json("customers", "create", "--name", name)["id"])

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Read the database file directly, behind the CLI's back."""
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(sql, params).fetchall()

    def stored_bytes(self) -> bytes:
        """Every byte SQLite keeps for the database: the file and its WAL, if any."""
        paths = [self.db_path, self.db_path.with_name(self.db_path.name + "-wal")]
        return b"".join(path.read_bytes() for path in paths if path.exists())


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """A CLI whose only settings are a database file in an empty working directory and the
    test catalog (its free plan includes no credits, so balances are exactly the grants)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TOLLHOUSE_"):
            monkeypatch.delenv(name)
    runner = Cli(tmp_path)
    monkeypatch.setenv("TOLLHOUSE_DATABASE_URL", runner.url)
    (tmp_path / "settings").mkdir()
    catalog = write_catalog(tmp_path / "settings", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("TOLLHOUSE_CATALOG", str(catalog))
    get_settings.cache_clear()
    yield runner
    get_settings.cache_clear()


@pytest.fixture
def migrated(cli: Cli) -> Cli:
    cli.ok("db", "upgrade")
    return cli


class TestDbUpgrade:
    def test_upgrade_creates_every_table_in_the_configured_file(self, cli: Cli) -> None:
        result = cli.ok("db", "upgrade")

        assert "up to date" in result.stdout
        tables = {name for (name,) in cli.rows("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {
            "alembic_version",
            "customers",
            "api_keys",
            "ledger_accounts",
            "ledger_entries",
            "ledger_holds",
            "usage_events",
        } <= tables

    def test_upgrade_twice_keeps_the_data(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        migrated.ok("db", "upgrade")

        assert migrated.rows("SELECT id FROM customers") == [(customer_id,)]


class TestCustomers:
    def test_create_prints_a_new_customer_on_the_default_plan(self, migrated: Cli) -> None:
        created = migrated.json(
            "customers", "create", "--name", "Ada", "--email", "ada@example.com"
        )

        assert created["id"].startswith("cus_")
        assert created["plan"] == "free"
        assert migrated.rows("SELECT name, email FROM customers WHERE id = ?", created["id"]) == [
            ("Ada", "ada@example.com")
        ]

    def test_list_shows_every_customer(self, migrated: Cli) -> None:
        ids = {migrated.customer("Ada"), migrated.customer("Grace")}

        listed = migrated.json("customers", "list")

        assert {c["id"] for c in listed} == ids

    def test_unknown_plan_exits_1_and_stores_nothing(self, migrated: Cli) -> None:
        result = migrated.invoke("customers", "create", "--name", "Ada", "--plan", "platinum")

        assert result.exit_code == 1
        assert "platinum" in result.stderr
        assert migrated.rows("SELECT count(*) FROM customers") == [(0,)]


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


class TestCredits:
    def test_grant_of_two_fifty_adds_two_and_a_half_million_micros(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        grant = migrated.json("credits", "grant", customer_id, "2.50")

        assert grant["customer_id"] == customer_id
        assert (grant["amount_micros"], grant["remaining_micros"]) == (GRANT_MICROS, GRANT_MICROS)

    def test_balance_shows_the_granted_credits_as_available(self, migrated: Cli) -> None:
        customer_id = migrated.customer()
        grant = migrated.json("credits", "grant", customer_id, "2.50")

        balance = migrated.json("credits", "balance", customer_id)

        assert balance["available_micros"] == GRANT_MICROS
        assert balance["held_micros"] == 0
        assert balance["grants"] == [
            {"id": grant["id"], "remaining_micros": GRANT_MICROS, "expires_at": None}
        ]

    def test_history_lists_each_grant_newest_first(self, migrated: Cli) -> None:
        customer_id = migrated.customer()
        migrated.json("credits", "grant", customer_id, "2.50")
        migrated.json("credits", "grant", customer_id, "0.000001")

        history = migrated.json("credits", "history", customer_id)

        assert [(e["kind"], e["amount_micros"]) for e in history] == [
            ("grant", 1),
            ("grant", GRANT_MICROS),
        ]

    def test_grant_with_the_same_idempotency_key_counts_once(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        first = migrated.json("credits", "grant", customer_id, "1", "--idempotency-key", "welcome")
        again = migrated.json("credits", "grant", customer_id, "1", "--idempotency-key", "welcome")

        assert first["id"] == again["id"]
        assert migrated.json("credits", "balance", customer_id)["available_micros"] == 1_000_000

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["-5"], "must be positive"),
            (["--", "-5"], "must be positive"),
            (["0"], "must be positive"),
            (["abc"], "not a decimal amount"),
            (["0.0000001"], "not a whole number of micros"),
        ],
        ids=["negative", "negative-after-dashes", "zero", "not-a-number", "below-a-micro"],
    )
    def test_bad_amount_exits_1_with_the_reason_and_stores_nothing(
        self, migrated: Cli, args: list[str], message: str
    ) -> None:
        customer_id = migrated.customer()

        result = migrated.invoke("credits", "grant", customer_id, *args)

        assert result.exit_code == 1, (result.stdout, result.stderr)
        assert message in result.stderr
        assert migrated.json("credits", "history", customer_id) == []
        assert migrated.json("credits", "balance", customer_id)["available_micros"] == 0
        assert migrated.rows("SELECT count(*) FROM ledger_entries") == [(0,)]

    def test_grant_to_an_unknown_customer_exits_1_and_stores_nothing(self, migrated: Cli) -> None:
        result = migrated.invoke("credits", "grant", "cus_missing", "5")

        assert result.exit_code == 1
        assert "no customer 'cus_missing'" in result.stderr
        assert migrated.rows("SELECT count(*) FROM ledger_accounts") == [(0,)]
        assert migrated.rows("SELECT count(*) FROM ledger_entries") == [(0,)]

    def test_mistyped_option_after_the_amount_is_still_refused(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        result = migrated.invoke("credits", "grant", customer_id, "5", "--expire-at", "2030-01-01")

        assert result.exit_code == 2
        assert "--expire-at" in result.stderr
        assert migrated.rows("SELECT count(*) FROM ledger_entries") == [(0,)]

    def test_balance_of_an_unknown_customer_exits_1(self, migrated: Cli) -> None:
        result = migrated.invoke("credits", "balance", "cus_missing", "--json")

        assert result.exit_code == 1
        assert result.stdout == ""
        assert "no customer 'cus_missing'" in result.stderr


class TestUsage:
    def test_usage_sums_each_meter_over_the_customers_events(self, migrated: Cli) -> None:
        customer_id = migrated.customer()
        other_id = migrated.customer("Grace")
        record_usage(
            migrated.url,
            [
                (customer_id, "input_tokens", 800),
                (customer_id, "input_tokens", 200),
                (customer_id, "images", 3),
                (other_id, "input_tokens", 5),
            ],
        )

        buckets = migrated.json(
            "usage", customer_id, "--meter", "input_tokens", "--meter", "images"
        )

        assert {b["meter"]: b["value"] for b in buckets} == {"input_tokens": 1000, "images": 3}

    def test_usage_of_a_new_customer_is_zero_on_every_meter(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        buckets = migrated.json("usage", customer_id)

        assert "api_calls" in {b["meter"] for b in buckets}
        assert {b["value"] for b in buckets} == {0}

    def test_unknown_meter_exits_1_naming_it(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        result = migrated.invoke("usage", customer_id, "--meter", "smiles")

        assert result.exit_code == 1
        assert "smiles" in result.stderr

    def test_bad_window_exits_1_naming_it(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        result = migrated.invoke("usage", customer_id, "--window", "fortnight")

        assert result.exit_code == 1
        assert "fortnight" in result.stderr


def record_usage(url: str, events: list[tuple[str, str, int]]) -> None:
    """Record `(customer, meter, value)` events an hour ago, as the gateway would."""

    async def write() -> None:
        db = Database(url)
        clock = SystemClock()
        recorder = UsageRecorder(db, clock=clock)
        await recorder.start()
        try:
            at = clock.now() - timedelta(hours=1)
            await recorder.record(
                [
                    UsageEventIn(
                        id=f"e{n}", customer_id=customer, meter=meter, value=value, occurred_at=at
                    )
                    for n, (customer, meter, value) in enumerate(events)
                ]
            )
        finally:
            await recorder.stop()
            await db.dispose()

    asyncio.run(write())


class TestCatalogValidate:
    def test_builtin_catalog_is_valid(self, cli: Cli) -> None:
        summary = cli.json("catalog", "validate", str(BUILTIN_CATALOG))

        assert summary["valid"] is True
        assert summary["models"] > 0

    def test_broken_catalog_exits_1_naming_the_offending_key_once(self, cli: Cli) -> None:
        path = cli.directory / "broken.yaml"
        path.write_text(BROKEN_CATALOG)

        result = cli.invoke("catalog", "validate", str(path))

        assert result.exit_code == 1
        assert "models.bad-model.category" in result.stderr
        assert "no-such-category" in result.stderr
        assert "good-model" not in result.stderr
        assert result.stderr.count("models.bad-model.category") == 1

    def test_broken_catalog_as_json_is_a_problem_listing_the_key(self, cli: Cli) -> None:
        path = cli.directory / "broken.yaml"
        path.write_text(BROKEN_CATALOG)

        result = cli.invoke("catalog", "validate", str(path), "--json")

        assert result.exit_code == 1
        problem = json.loads(result.stdout)
        assert problem["status"] == 422
        assert [e["loc"] for e in problem["errors"]] == ["models.bad-model.category"]

    def test_every_problem_is_printed_in_one_pass_with_its_line(self, cli: Cli) -> None:
        path = cli.directory / "many.yaml"
        path.write_text(MANY_PROBLEMS_CATALOG)

        result = cli.invoke("catalog", "validate", str(path))

        assert result.exit_code == 1
        assert "(3 errors)" in result.stderr
        printed = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
        assert [line.split(":")[0] for line in printed] == MANY_PROBLEMS
        assert printed[1].endswith("rank 0 is also used by plan 'free' (line 5)")
        assert "unknown category 'txt'" in printed[2]

    def test_every_problem_is_listed_in_the_json_problem(self, cli: Cli) -> None:
        path = cli.directory / "many.yaml"
        path.write_text(MANY_PROBLEMS_CATALOG)

        result = cli.invoke("catalog", "validate", str(path), "--json")

        assert result.exit_code == 1
        assert [e["loc"] for e in json.loads(result.stdout)["errors"]] == MANY_PROBLEMS

    def test_missing_file_exits_1_naming_it(self, cli: Cli) -> None:
        result = cli.invoke("catalog", "validate", "nowhere.yaml")

        assert result.exit_code == 1
        assert "nowhere.yaml" in result.stderr
        assert "not found" in result.stderr


class TestInit:
    def test_init_writes_a_starter_catalog_that_validates(self, cli: Cli) -> None:
        cli.ok("init")

        summary = cli.json("catalog", "validate", "tollhouse.yaml")

        assert (cli.directory / "tollhouse.yaml").exists()
        assert summary["valid"] is True
        assert summary["models"] > 0

    def test_init_refuses_to_overwrite_an_existing_file(self, cli: Cli) -> None:
        path = cli.directory / "tollhouse.yaml"
        path.write_text("# my edits\n")

        result = cli.invoke("init")

        assert result.exit_code == 1
        assert "--force" in result.stderr
        assert path.read_text() == "# my edits\n"

    def test_init_with_force_overwrites(self, cli: Cli) -> None:
        path = cli.directory / "tollhouse.yaml"
        path.write_text("# my edits\n")

        cli.ok("init", "--force")

        assert path.read_text() == tollhouse.catalog.starter_catalog_text()

    def test_init_writes_to_the_given_path(self, cli: Cli) -> None:
        target = cli.directory / "catalog.yaml"

        cli.ok("init", "--path", str(target))

        assert target.read_text() == tollhouse.catalog.starter_catalog_text()


class TestErrors:
    def test_user_input_in_an_error_is_printed_verbatim_not_as_markup(self, migrated: Cli) -> None:
        result = migrated.invoke("credits", "balance", "[/bold]cus_[red]x")

        assert result.exit_code == 1
        assert "no customer '[/bold]cus_[red]x'" in result.stderr

    def test_each_problem_is_printed_once(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        result = migrated.invoke("credits", "grant", customer_id, "0")

        assert result.exit_code == 1
        assert result.stderr.count("must be positive") == 1

    def test_verb_on_an_unmigrated_database_exits_1_pointing_at_db_upgrade(self, cli: Cli) -> None:
        result = cli.invoke("customers", "list", "--json")

        assert result.exit_code == 1
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "tollhouse db upgrade" in result.stderr
        assert result.stdout == ""


class TestSubscriptions:
    def test_plans_are_listed_by_rank(self, migrated: Cli) -> None:
        plans = migrated.json("plans", "list")

        assert [p["name"] for p in plans] == ["free", "capped", "pro", "lifetime"]
        assert plans[1]["quotas"] == {"api_calls": 3}

    def test_a_new_customer_is_subscribed_to_free(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        shown = migrated.json("subscriptions", "show", customer_id)

        assert (shown["plan"], shown["status"]) == ("free", "active")

    def test_upgrade_is_immediate_and_grants_the_prorated_included_credits(
        self, migrated: Cli
    ) -> None:
        customer_id = migrated.customer()

        changed = migrated.json("subscriptions", "change", customer_id, "pro")

        assert (changed["plan"], changed["change"]) == ("pro", "upgraded")
        balance = migrated.json("credits", "balance", customer_id)
        assert balance["available_micros"] == changed["credits_granted_micros"] > 0

    def test_downgrade_is_scheduled_and_resume_undoes_it(self, migrated: Cli) -> None:
        customer_id = migrated.customer()
        migrated.json("subscriptions", "change", customer_id, "pro")

        scheduled = migrated.json("subscriptions", "change", customer_id, "free")
        resumed = migrated.json("subscriptions", "resume", customer_id)

        assert (scheduled["plan"], scheduled["scheduled_plan"]) == ("pro", "free")
        assert resumed["scheduled_plan"] is None

    def test_rollover_with_nothing_due_rolls_nothing(self, migrated: Cli) -> None:
        migrated.customer()

        report = migrated.json("subscriptions", "rollover")

        assert report["periods_rolled"] == 0

    def test_unknown_plan_exits_1_naming_it(self, migrated: Cli) -> None:
        customer_id = migrated.customer()

        result = migrated.invoke("subscriptions", "change", customer_id, "platinum")

        assert result.exit_code == 1
        assert "platinum" in result.stderr
