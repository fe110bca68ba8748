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


class Servers:
    """Processes a test starts (each on a free port, polled at `/health` until it answers),
    stopped after the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, command: list[str], cwd: Path, env: dict[str, str]) -> str:
        """Run `command` plus `--port N`; its base URL once `/health` answers 200."""
        port = free_port()
        log_path = self.tmp_path / f"server-{port}.log"
        with log_path.open("wb") as log:
            self.processes.append(subprocess.Popen(
                [*command, "--port", str(port)], cwd=cwd, env=env, stdout=log,
                stderr=subprocess.STDOUT,
            ))  # fmt: skip
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if httpx.get(base_url + "/health").status_code == 200:
                    return base_url
            except httpx.TransportError:
                pass
            assert self.processes[-1].poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"{command} did not start"
            time.sleep(0.1)

    def example(
        self,
        directory: Path,
        preset: str,
        *,
        app: str | None = "app:app",
        replace: dict[str, str] | None = None,
        **settings: str,
    ) -> Example:
        """The example at `directory` served by uvicorn (`app`), or `tollhouse serve` when
        `app` is None, on a fresh SQLite file and the catalog of `preset` (its text with
        `replace`'s substitutions), with the `TOLLHOUSE_*` `settings` given."""
        text = preset_text(preset)
        for old, new in (replace or {}).items():
            text = text.replace(old, new)
        catalog = self.tmp_path / "tollhouse.yaml"
        catalog.write_text(text)
        env = environment(
            TOLLHOUSE_DATABASE_URL=f"sqlite:///{self.tmp_path / 'example.db'}",
            TOLLHOUSE_CATALOG=str(catalog),
            **settings,
        )
        upgrade = subprocess.run(
            [sys.executable, "-m", "tollhouse.cli.main", "db", "upgrade"], env=env,
            cwd=directory, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert upgrade.returncode == 0, upgrade.stderr
        command = (
            [sys.executable, "-m", "tollhouse.cli.main", "serve"]
            if app is None
            else [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1"]
        )
        return Example(self.start(command, directory, env), env, directory)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            try:
                process.wait(STARTUP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    yield started
    started.stop()
