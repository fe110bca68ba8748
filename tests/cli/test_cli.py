"""The `tollhouse` command, driven in-process with Typer's CliRunner against a SQLite file.

Every test starts in its own directory with `TOLLHOUSE_DATABASE_URL` naming a file there and no
other `TOLLHOUSE_*` variable, and clears the cached settings before and after. Tests are plain
`def`: the CLI runs its own event loop with `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from tests.support.cli import Cli

import tollhouse.catalog
from tollhouse.clock import SystemClock
from tollhouse.metering import UsageEventIn, UsageRecorder
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

        assert path.read_text() == tollhouse.catalog.preset_text()

    def test_init_writes_to_the_given_path(self, cli: Cli) -> None:
        target = cli.directory / "catalog.yaml"

        cli.ok("init", "--path", str(target))

        assert target.read_text() == tollhouse.catalog.preset_text()

    @pytest.mark.parametrize("preset", tollhouse.catalog.PRESETS)
    def test_init_writes_each_preset_and_it_validates(self, cli: Cli, preset: str) -> None:
        cli.ok("init", "--preset", preset)

        summary = cli.json("catalog", "validate", "tollhouse.yaml")

        assert summary["valid"] is True
        assert (cli.directory / "tollhouse.yaml").read_text() == tollhouse.catalog.preset_text(
            preset
        )

    def test_an_unknown_preset_exits_2_naming_the_presets_and_writes_nothing(
        self, cli: Cli
    ) -> None:
        result = cli.invoke("init", "--preset", "chatbot")

        assert result.exit_code == 2
        assert "no preset 'chatbot'" in result.stderr and "analysis-sessions" in result.stderr
        assert not (cli.directory / "tollhouse.yaml").exists()


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

        assert [p["name"] for p in plans] == ["free", "capped", "concurrent", "pro", "lifetime"]
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
