"""What every example's tests share: the example served by uvicorn in a subprocess, on a
fresh SQLite file and a catalog written from a preset, with a customer and its key made by
the `tollhouse` CLI, as the example's README tells a user to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.support.ports import free_port

from tollhouse.catalog import preset_text

STARTUP_SECONDS = 30.0


@dataclass(frozen=True)
class Example:
    """A served example: its URL, and the tollhouse CLI on its database and catalog."""

    base_url: str
    env: dict[str, str]
    directory: Path

    def tollhouse(self, *args: str) -> dict[str, object]:
        """`tollhouse ARGS --json`, its document."""
        done = subprocess.run(
            [sys.executable, "-m", "tollhouse.cli.main", *args, "--json"],
            env=self.env, cwd=self.directory, capture_output=True, text=True, check=False,
            timeout=STARTUP_SECONDS,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        document: dict[str, object] = json.loads(done.stdout)
        return document

    def customer(self, credits: str, plan: str = "free") -> tuple[str, str]:
        """A new customer on `plan` with `credits` (dollars) and a key: (id, key)."""
        customer_id = str(
            self.tollhouse("customers", "create", "--name", "Ada", "--plan", plan)["id"]
        )
        if credits != "0":
            self.tollhouse("credits", "grant", customer_id, credits)
        return customer_id, str(self.tollhouse("keys", "create", "--customer", customer_id)["key"])

    def available_micros(self, customer_id: str) -> int:
        return int(str(self.tollhouse("credits", "balance", customer_id)["available_micros"]))


def environment(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOLLHOUSE_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


@pytest.fixture
def serve_example(tmp_path: Path) -> Iterator[object]:
    """`serve_example(directory, preset, app="app:app")`: the example running, as `Example`."""
    processes: list[subprocess.Popen[bytes]] = []

    def serve(directory: Path, preset: str, app: str = "app:app", **env: str) -> Example:
        catalog = tmp_path / "tollhouse.yaml"
        catalog.write_text(preset_text(preset))
        example = Example("", environment(
            TOLLHOUSE_DATABASE_URL=f"sqlite:///{tmp_path / 'example.db'}",
            TOLLHOUSE_CATALOG=str(catalog), **env,
        ), directory)  # fmt: skip
        upgrade = subprocess.run(
            [sys.executable, "-m", "tollhouse.cli.main", "db", "upgrade"], env=example.env,
            cwd=directory, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert upgrade.returncode == 0, upgrade.stderr
        port = free_port()
        log = (tmp_path / f"{directory.name}.log").open("wb")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)],
            cwd=directory, env=example.env, stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if httpx.get(base_url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert processes[-1].poll() is None, (tmp_path / f"{directory.name}.log").read_text()
            assert time.monotonic() < deadline, "the example did not start"
            time.sleep(0.1)
        return Example(base_url, example.env, directory)

    yield serve
    for process in processes:
        process.terminate()
        try:
            process.wait(STARTUP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
