"""`tollhouse doctor`: a consistent database says so and exits 0; a corrupted one lists each
problem, one line each, and exits 1; `--json` gives the same as one document; a database that
cannot be used exits 2."""

from __future__ import annotations

import json
import sqlite3

from tests.support.cli import Cli


class TestDoctor:
    def test_a_consistent_ledger_exits_0(self, migrated: Cli) -> None:
        customer = migrated.customer()
        migrated.ok("credits", "grant", customer, "2.50")

        result = migrated.ok("doctor")

        assert result.stdout == "ledger consistent\n"
        assert json.loads(migrated.ok("doctor", "--json").stdout) == {
            "consistent": True,
            "problems": [],
        }

    def test_a_corrupted_ledger_lists_each_problem_and_exits_1(self, migrated: Cli) -> None:
        customer = migrated.customer()
        migrated.ok("credits", "grant", customer, "2.50")
        with sqlite3.connect(migrated.db_path) as conn:
            conn.execute("UPDATE ledger_accounts SET balance = balance + 7 WHERE kind = 'grant'")
        (lot_id,) = migrated.rows("SELECT id FROM ledger_accounts WHERE kind = 'grant'")[0]

        result = migrated.invoke("doctor")

        assert result.exit_code == 1
        assert result.stdout.splitlines() == [
            f"account {lot_id}: balance 2500007 != sum of entries 2500000",
            "currency usd: balances sum to 7, not 0",
        ]
        as_json = migrated.invoke("doctor", "--json")
        assert as_json.exit_code == 1
        assert json.loads(as_json.stdout) == {
            "consistent": False,
            "problems": result.stdout.splitlines(),
        }

    def test_a_database_that_cannot_be_used_exits_2(self, cli: Cli) -> None:
        result = cli.invoke("doctor")  # never migrated: no tables

        assert result.exit_code == 2
        assert "ledger_accounts" in result.stderr
