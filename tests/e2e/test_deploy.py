"""`deploy/`: the compose file, Prometheus' configuration and alert rules, and the Grafana
dashboard parse, and every metric they use is one `/metrics` serves (renaming a metric fails
here, not silently in someone's dashboard). `promtool` (Debian's `prometheus` package) checks
the configuration and the rules, and runs the rules' unit tests (`alerts_test.yml`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import unavailable
from tests.e2e.conftest import Stack

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
METRIC = re.compile(r"\btollhouse_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def expressions() -> dict[str, list[str]]:
    """Every PromQL expression of the alert rules and the dashboard, by file."""
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    dashboard = json.loads((DEPLOY / "grafana" / "tollhouse.json").read_text())
    return {
        "alerts.yml": [rule["expr"] for group in rules["groups"] for rule in group["rules"]],
        "tollhouse.json": [
            target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
        ],
    }


async def served_names(stack: Stack) -> set[str]:
    """The sample names `/metrics` can serve: each family's, with its type's suffixes."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        text = (await http.get("/metrics")).text
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES.get(family.type, ("",))
    }


async def test_every_metric_in_the_rules_and_the_dashboard_is_served(stack: Stack) -> None:
    served = await served_names(stack)
    used = {file: set(METRIC.findall(" ".join(exprs))) for file, exprs in expressions().items()}

    for file, names in used.items():
        assert names, file
        assert names <= served, (file, sorted(names - served))
    # the alerts the issue asks for are there
    alerts = set(METRIC.findall(" ".join(expressions()["alerts.yml"])))
    assert {
        "tollhouse_http_requests_total",
        "tollhouse_ready",
        "tollhouse_gateway_added_latency_seconds_bucket",
        "tollhouse_usage_events_total",
        "tollhouse_webhook_attempts_total",
        "tollhouse_ledger_commit_duration_seconds_bucket",
    } <= alerts


def test_compose_runs_tollhouse_on_postgres_and_redis_scraped_by_prometheus() -> None:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]

    assert set(services) == {"tollhouse", "postgres", "redis", "prometheus"}
    tollhouse = services["tollhouse"]
    assert tollhouse["command"] == ["serve", "--workers", "2"]
    assert tollhouse["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (DEPLOY.parent / tollhouse["build"]["dockerfile"]).is_file()
    environment = tollhouse["environment"]
    assert environment["TOLLHOUSE_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in environment["TOLLHOUSE_DATABASE_URL"]
    assert environment["TOLLHOUSE_REDIS_URL"].startswith("redis://redis:")
    for mount in services["prometheus"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).is_file(), mount
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["tollhouse:8080"]
    assert config["rule_files"] == ["alerts.yml"]


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        unavailable("promtool", FileNotFoundError("promtool (Debian package: prometheus)"))
    assert found is not None
    return found


@pytest.mark.parametrize(
    "command",
    [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ],
)
def test_promtool_accepts_the_configuration_and_the_rules(
    promtool: str, command: list[str]
) -> None:
    checked = subprocess.run(
        [promtool, *command], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr
