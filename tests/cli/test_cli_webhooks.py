"""`tollhouse webhooks` on a migrated SQLite file: add (the secret printed once), list (no
secret), disable and enable, deliveries (the log, after a dispatcher pass, as `serve` runs
it), retry, remove; bad input and unknown ids exit 1 with a message."""

from __future__ import annotations

import asyncio

from tests.support.cli import Cli

from tollhouse.clock import SystemClock
from tollhouse.events import service as events
from tollhouse.storage import Database
from tollhouse.webhooks import Dispatcher

URL = "https://app.example.com/hooks"


def emit_and_dispatch(cli: Cli, type: str = "session.started") -> str:
    """Emit one event and run one dispatcher pass; the event's id."""

    async def main() -> str:
        db = Database(cli.url)
        try:
            async with db.transaction() as session:
                event = await events.emit(
                    session, customer_id=None, type=type, data={}, clock=SystemClock()
                )
            await Dispatcher(db, clock=SystemClock()).dispatch()
            return event.id
        finally:
            await db.dispose()

    return asyncio.run(main())


class TestEndpoints:
    def test_add_prints_the_secret_once_and_list_never(self, migrated: Cli) -> None:
        added = migrated.ok("webhooks", "add", URL, "--type", "session.*", "--description", "x")
        assert "webhook endpoint added" in added.stdout
        secret = added.stdout.strip().splitlines()[-1]
        assert secret.startswith("whsec_")
        listed = migrated.json("webhooks", "list")
        assert [(e["url"], e["event_types"], e["description"]) for e in listed] == [
            (URL, ["session.*"], "x")
        ]
        assert secret not in migrated.ok("webhooks", "list").stdout
        assert "secret" not in listed[0]

    def test_add_json_has_the_secret_and_defaults_to_every_event(self, migrated: Cli) -> None:
        added = migrated.json("webhooks", "add", URL)
        assert added["secret"].startswith("whsec_") and added["event_types"] == ["*"]

    def test_disable_enable_remove(self, migrated: Cli) -> None:
        endpoint_id = migrated.json("webhooks", "add", URL)["id"]
        off = migrated.json("webhooks", "disable", endpoint_id)
        assert off["enabled"] is False and off["disabled_reason"] == "disabled by the operator"
        on = migrated.json("webhooks", "enable", endpoint_id)
        assert on["enabled"] is True and on["disabled_reason"] is None
        migrated.ok("webhooks", "remove", endpoint_id)
        assert migrated.json("webhooks", "list") == []

    def test_bad_url_and_unknown_id_exit_1(self, migrated: Cli) -> None:
        bad = migrated.invoke("webhooks", "add", "ftp://example.com")
        assert bad.exit_code == 1 and "http:// or https://" in bad.stderr
        bad_type = migrated.invoke("webhooks", "add", URL, "--type", "Session")
        assert bad_type.exit_code == 1 and "event_types" in bad_type.stderr
        unknown = migrated.invoke("webhooks", "remove", "whe_missing")
        assert unknown.exit_code == 1 and "webhook-endpoint-not-found" in unknown.stderr


class TestDeliveries:
    def test_deliveries_lists_the_log_and_retry_makes_one_due(self, migrated: Cli) -> None:
        sessions = migrated.json("webhooks", "add", URL, "--type", "session.*")["id"]
        everything = migrated.json("webhooks", "add", URL + "/all")["id"]
        event_id = emit_and_dispatch(migrated)
        low_id = emit_and_dispatch(migrated, "credits.low")
        log = migrated.json("webhooks", "deliveries")
        assert log["data"][0]["event_id"] == low_id  # newest first
        assert sorted((d["endpoint_id"], d["event_id"]) for d in log["data"]) == sorted(
            [(everything, low_id), (everything, event_id), (sessions, event_id)]
        )
        assert all(d["status"] == "pending" and d["attempts"] == [] for d in log["data"])
        mine = migrated.json("webhooks", "deliveries", "--endpoint", sessions)
        assert [d["event_id"] for d in mine["data"]] == [event_id]
        page = migrated.json("webhooks", "deliveries", "--limit", "2")
        assert page["has_more"] is True
        rest = migrated.json("webhooks", "deliveries", "--before", page["next_cursor"])
        assert [d["id"] for d in page["data"] + rest["data"]] == [d["id"] for d in log["data"]]
        assert (
            "more follow: --before" in migrated.ok("webhooks", "deliveries", "--limit", "1").stdout
        )

        retried = migrated.json("webhooks", "retry", log["data"][0]["id"])
        assert retried["status"] == "pending" and retried["id"] == log["data"][0]["id"]
        migrated.ok("webhooks", "disable", everything)
        refused = migrated.invoke("webhooks", "retry", log["data"][0]["id"])
        assert refused.exit_code == 1 and "webhook-endpoint-disabled" in refused.stderr
        unknown = migrated.invoke("webhooks", "retry", "whd_missing")
        assert unknown.exit_code == 1 and "webhook-delivery-not-found" in unknown.stderr
