"""CLI verbs that write a plan, a model or an amount check the catalog in force.

Each test records a catalog as `tollhouse serve` does at start (the test catalog with pro at
$39 instead of $29, and `test-embed` renamed), while the CLI keeps running the test catalog:
what the two share goes through, the rest exits 1 naming both catalogs and writes nothing.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.support.catalog import catalog_text
from tests.support.cli import Cli

from tollhouse.config import Settings
from tollhouse.server.bootstrap import bootstrap


def serve_catalog(cli: Cli, **replace: str) -> Path:
    """Record the test catalog, edited by `replace` (old -> new), as the catalog in force."""
    text = catalog_text("http://127.0.0.1:9/v1").replace('version: "test"', 'version: "served"')
    for old, new in replace.items():
        text = text.replace(old, new)
    path = cli.directory / "served" / "tollhouse.yaml"
    path.parent.mkdir()
    path.write_text(text)
    settings = Settings(database_url=cli.url, catalog=path, _env_file=None)  # type: ignore[call-arg]
    asyncio.run(bootstrap(settings))
    return path


def pro_at_39(cli: Cli) -> Path:
    return serve_catalog(cli, **{'price: "29.00"': 'price: "39.00"', "test-embed:": "embed-v2:"})


def printed(text: str, stderr: str) -> bool:
    """Whether `stderr` says `text`, however the console wrapped it at its width."""
    return "".join(text.split()) in "".join(stderr.split())


def assert_names_both(stderr: str, served: Path) -> None:
    assert printed("uses catalog ", stderr) and printed("(version test, sha256 ", stderr)
    assert printed(f"the catalog in force is catalog {served} (version served, sha256 ", stderr)


class TestCatalogInForce:
    def test_customer_on_a_plan_with_other_terms_is_refused_naming_both(
        self, migrated: Cli
    ) -> None:
        served = pro_at_39(migrated)

        result = migrated.invoke("customers", "create", "--name", "Ada", "--plan", "pro")

        assert result.exit_code == 1
        assert "not-in-catalog-in-force" in result.stderr
        assert printed("price_micros 39000000 there, 29000000 here", result.stderr)
        assert_names_both(result.stderr, served)
        assert migrated.rows("SELECT count(*) FROM customers") == [(0,)]

    def test_customer_on_a_shared_plan_is_created(self, migrated: Cli) -> None:
        pro_at_39(migrated)

        created = migrated.json("customers", "create", "--name", "Ada")

        assert created["plan"] == "free"

    def test_plan_change_onto_a_plan_with_other_terms_is_refused(self, migrated: Cli) -> None:
        customer_id = migrated.customer()
        served = pro_at_39(migrated)

        result = migrated.invoke("subscriptions", "change", customer_id, "pro")

        assert result.exit_code == 1
        assert_names_both(result.stderr, served)
        assert migrated.rows("SELECT plan FROM subscriptions") == [("free",)]

    def test_key_for_a_model_missing_from_the_catalog_in_force_is_refused(
        self, migrated: Cli
    ) -> None:
        customer_id = migrated.customer()
        served = pro_at_39(migrated)

        refused = migrated.invoke(
            "keys", "create", "--customer", customer_id, "--models", "test-chat,test-embed"
        )
        allowed = migrated.json(
            "keys", "create", "--customer", customer_id, "--models", "test-chat"
        )

        assert refused.exit_code == 1
        assert printed("model 'test-embed' is not in the catalog in force", refused.stderr)
        assert_names_both(refused.stderr, served)
        assert allowed["allowed_models"] == ["test-chat"]
        assert migrated.rows(
            "SELECT count(*) FROM api_keys WHERE customer_id = ?", customer_id
        ) == [(1,)]

    def test_grant_in_another_currency_than_the_catalog_in_force_is_refused(
        self, migrated: Cli
    ) -> None:
        customer_id = migrated.customer()
        serve_catalog(migrated, **{"currency: usd": "currency: eur"})

        result = migrated.invoke("credits", "grant", customer_id, "5.00")

        assert result.exit_code == 1
        assert printed("the catalog in force counts money in 'eur', not 'usd'", result.stderr)
        assert migrated.rows("SELECT count(*) FROM ledger_entries") == [(0,)]

    def test_rollover_with_other_terms_for_a_plan_in_use_is_refused(self, migrated: Cli) -> None:
        customer_id = migrated.customer()
        migrated.ok("subscriptions", "change", customer_id, "pro")
        pro_at_39(migrated)

        result = migrated.invoke("subscriptions", "rollover")

        assert result.exit_code == 1
        assert printed("plan 'pro' has other terms", result.stderr)

    def test_without_a_served_catalog_nothing_is_refused(self, migrated: Cli) -> None:
        created = migrated.json("customers", "create", "--name", "Ada", "--plan", "pro")

        assert json.dumps(created["plan"]) == '"pro"'
