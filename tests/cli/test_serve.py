"""`tollhouse serve` and the CLI as real OS processes (`python -m tollhouse.cli.main`).

- Start-up failures (a malformed URL, an invalid catalog, a busy port, an unreachable
  database, a catalog lacking a plan in use) are one line on stderr and exit code 2, never a
  traceback, and "listening" is not printed; `db upgrade` fails the same way.
- "listening" is printed once the port accepts connections; each upstream whose key
  variable is unset gets one warning line.
- The story of one catalog in force: `serve` runs in a directory with the `tollhouse.yaml`
  that `tollhouse init` wrote; a CLI run elsewhere (built-in catalog) cannot put a customer
  on a plan the served catalog lacks, while the CLI next to the file can, and that
  customer's gateway calls go through.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.support.catalog import catalog_text
from tests.support.ports import free_port
from tests.support.raw_http import Connection
from tests.support.upstream import FakeUpstream

import tollhouse
from tollhouse.cli.serve import listen
from tollhouse.keys import generate_key

SOURCE_ROOT = Path(tollhouse.__file__).resolve().parents[1]
STARTUP_SECONDS = 60.0
"""Bound on a process's start (import, migrate, bind); it takes about a second."""

BROKEN_CATALOG = """\
version: "broken"
plans:
  free: {rank: 0, trial_dayz: 3}
  pro: {rank: 0}
categories: {text: {requests_per_minute: 5}}
upstreams: {local: {base_url: "http://127.0.0.1:9/v1"}}
models: {chat: {category: txt, upstream: local}}
"""

KEYS_CATALOG = """\
version: "keys"
plans: {free: {rank: 0}}
categories: {text: {requests_per_minute: 5}}
upstreams:
  keyed: {base_url: "http://127.0.0.1:9/v1", api_key_env: TH_TEST_SET_KEY}
  unkeyed: {base_url: "http://127.0.0.1:9/v1", api_key_env: TH_TEST_UNSET_KEY}
  open: {base_url: "http://127.0.0.1:9/v1"}
models:
  a: {category: text, upstream: keyed}
  b: {category: text, upstream: unkeyed}
  c: {category: text, upstream: unkeyed}
"""


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without any `TOLLHOUSE_*` variable, plus `extra`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOLLHOUSE_")}
    env.pop("TH_TEST_UNSET_KEY", None)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def tollhouse_cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `tollhouse ARGS` to completion in `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "tollhouse.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
        check=False,
    )


def sqlite_url(path: Path) -> str:
    """The URL people paste: no driver named."""
    return f"sqlite:///{path}"


def assert_refused_in_one_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2, one line on stderr (containing each needle), no traceback, no "listening"."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stdout
    return lines[0]


class TestStartupFailures:
    def test_malformed_database_url(self, tmp_path: Path) -> None:
        env = environment(TOLLHOUSE_DATABASE_URL="mysql://ada:secret@db.internal/billing")

        result = tollhouse_cli(tmp_path, env, "serve", "--port", str(free_port()))

        line = assert_refused_in_one_line(
            result, "TOLLHOUSE_DATABASE_URL", "unsupported database 'mysql'"
        )
        assert "secret" not in line

    def test_invalid_catalog_lists_every_problem(self, tmp_path: Path) -> None:
        catalog = tmp_path / "broken.yaml"
        catalog.write_text(BROKEN_CATALOG)
        env = environment(
            TOLLHOUSE_DATABASE_URL=sqlite_url(tmp_path / "th.db"), TOLLHOUSE_CATALOG=str(catalog)
        )

        result = tollhouse_cli(tmp_path, env, "serve", "--port", str(free_port()))

        assert_refused_in_one_line(
            result,
            "3 errors",
            "plans.free.trial_dayz",
            "plans.pro.rank",
            "models.chat.category",
        )
        assert not (tmp_path / "th.db").exists()

    def test_busy_port(self, tmp_path: Path) -> None:
        env = environment(TOLLHOUSE_DATABASE_URL=sqlite_url(tmp_path / "th.db"))
        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = taken.getsockname()[1]

            result = tollhouse_cli(tmp_path, env, "serve", "--port", str(port))

        assert_refused_in_one_line(result, f"127.0.0.1:{port}", "already in use")
        assert not (tmp_path / "th.db").exists()

    @pytest.mark.parametrize(
        "url",
        ["postgresql://postgres@127.0.0.1:1/test", "sqlite:////nonexistent-dir/th/th.db"],
        ids=["postgres-refused", "sqlite-missing-directory"],
    )
    @pytest.mark.parametrize("command", ["serve", "db upgrade"])
    def test_unreachable_database(self, tmp_path: Path, url: str, command: str) -> None:
        env = environment(TOLLHOUSE_DATABASE_URL=url)
        options = ["--port", str(free_port())] if command == "serve" else []

        result = tollhouse_cli(tmp_path, env, *command.split(), *options)

        assert_refused_in_one_line(result, "the database")

    def test_catalog_lacking_a_plan_in_use(self, tmp_path: Path) -> None:
        env = environment(TOLLHOUSE_DATABASE_URL=sqlite_url(tmp_path / "th.db"))
        assert tollhouse_cli(tmp_path, env, "db", "upgrade").returncode == 0
        created = tollhouse_cli(
            tmp_path, env, "customers", "create", "--name", "A", "--plan", "basic"
        )
        assert created.returncode == 0, created.stderr
        catalog = tmp_path / "small.yaml"
        catalog.write_text(catalog_text("http://127.0.0.1:9/v1"))

        result = tollhouse_cli(
            tmp_path,
            {**env, "TOLLHOUSE_CATALOG": str(catalog)},
            "serve",
            "--port",
            str(free_port()),
        )

        assert_refused_in_one_line(
            result, f"catalog {catalog} (version test, sha256 ", "customers are on", ": basic"
        )


@dataclass
class Serving:
    """A running `tollhouse serve` and what it printed up to "listening"."""

    process: subprocess.Popen[str]
    base_url: str
    stdout: list[str]
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text()


@contextmanager
def serving(cwd: Path, env: dict[str, str], *options: str) -> Iterator[Serving]:
    """Start `tollhouse serve` on a free port; yield once it printed "listening"; stop it."""
    port = free_port()
    stderr_path = cwd / f"serve-{port}.err"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tollhouse.cli.main", "serve", "--port", str(port), *options],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    try:
        assert process.stdout is not None
        printed: list[str] = []
        while not printed or "listening" not in printed[-1]:
            line = process.stdout.readline()
            assert line, f"serve exited: {process.wait(STARTUP_SECONDS)}\n{stderr_path.read_text()}"
            printed.append(line.rstrip("\n"))
        yield Serving(process, f"http://127.0.0.1:{port}", printed, stderr_path)
    finally:
        process.terminate()
        try:
            process.wait(STARTUP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class TestStartup:
    def test_listening_is_printed_once_the_port_accepts_connections(self, tmp_path: Path) -> None:
        catalog = tmp_path / "keys.yaml"
        catalog.write_text(KEYS_CATALOG)
        env = environment(
            TOLLHOUSE_DATABASE_URL=sqlite_url(tmp_path / "th.db"),
            TOLLHOUSE_CATALOG=str(catalog),
            TH_TEST_SET_KEY="sk-set",
        )

        with serving(tmp_path, env) as served:
            with socket.create_connection(("127.0.0.1", int(served.base_url.rsplit(":")[-1]))):
                pass  # the port accepts as soon as "listening" is printed
            health = httpx.get(f"{served.base_url}/healthz", timeout=STARTUP_SECONDS)
            warnings = served.stderr().splitlines()

        assert health.status_code == 200
        assert served.stdout[-1] == f"tollhouse listening on {served.base_url} (API docs at /docs)"
        assert warnings == [
            "warning: upstream 'unkeyed' takes its API key from TH_TEST_UNSET_KEY, which is not "
            "set: its models (2) will be called without a key"
        ]


def test_connections_to_the_bound_socket_have_nagle_off() -> None:
    """uvicorn serves the socket `serve` binds as a UNIX socket, so nothing else turns Nagle's
    algorithm off on the connections it accepts: they inherit TCP_NODELAY from `listen`
    (else each small answer waits for the client's delayed ACK)."""
    with listen("127.0.0.1", free_port()) as server:
        with socket.create_connection(server.getsockname()[:2]):
            accepted, _ = server.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_several_workers_serve_the_socket_bound_before_listening(tmp_path: Path) -> None:
    """`--workers 2` on PostgreSQL: uvicorn's workers serve the socket `serve` bound."""
    database_url = await create_postgres_database()
    try:
        env = environment(TOLLHOUSE_DATABASE_URL=database_url.replace("+asyncpg", ""))
        with serving(tmp_path, env, "--workers", "2") as served:
            async with httpx.AsyncClient(timeout=STARTUP_SECONDS) as http:
                answers = [await http.get(f"{served.base_url}/healthz") for _ in range(4)]
    finally:
        await drop_postgres_database(database_url)

    assert [a.status_code for a in answers] == [200] * 4


@asynccontextmanager
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream()
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


async def run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`tollhouse_cli` in a thread, so the upstream in this event loop keeps answering."""
    return await asyncio.to_thread(tollhouse_cli, cwd, env, *args)


async def test_cli_elsewhere_cannot_use_a_plan_the_served_catalog_lacks(tmp_path: Path) -> None:
    """The operator runs `tollhouse init` and `tollhouse serve` in `site/` (no variable: the
    file is picked up). From `elsewhere/`, without the file, the CLI runs the built-in
    catalog, which has a `basic` plan the served catalog lacks: `customers create --plan
    basic` exits 1 naming both catalogs (where each came from, version, digest) and creates
    nothing; it would otherwise create a customer whose every gateway call fails with 404.
    From `site/` the CLI uses the served catalog: a customer on `pro` is created, and its
    gateway call is answered by the upstream."""
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    operator_key = generate_key()
    env = environment(
        TOLLHOUSE_DATABASE_URL=sqlite_url(tmp_path / "th.db"),
        TOLLHOUSE_BOOTSTRAP_KEY=operator_key,
    )
    init = await run(site, env, "init")
    assert init.returncode == 0, init.stderr
    assert "tollhouse serve" in init.stdout and "use it with TOLLHOUSE_CATALOG" not in init.stdout
    async with fake_upstream() as upstream:
        catalog = site / "tollhouse.yaml"
        catalog.write_text(
            catalog.read_text().replace("http://127.0.0.1:8000/v1", upstream.base_url)
        )
        digest = hashlib.sha256(catalog.read_bytes()).hexdigest()

        with serving(site, env) as served:
            refused = await run(
                elsewhere, env, "customers", "create", "--name", "Ada", "--plan", "basic"
            )
            listed = await run(elsewhere, env, "customers", "list", "--json")
            created = await run(
                site, env, "customers", "create", "--name", "Ada", "--plan", "pro", "--json"
            )
            customer_id = json.loads(created.stdout)["id"]
            key = json.loads(
                (await run(site, env, "keys", "create", "--customer", customer_id, "--json")).stdout
            )["key"]
            async with httpx.AsyncClient(timeout=STARTUP_SECONDS) as http:
                answer = await http.post(
                    f"{served.base_url}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": "qwen3-8b", "messages": [{"role": "user", "content": "hi"}]},
                )
            warnings = served.stderr()

    assert refused.returncode == 1, refused.stdout
    message = "".join(refused.stderr.split())  # however the console wrapped it
    for said in (
        "plan 'basic' is not in the catalog in force",
        "this process uses the built-in catalog (version 2026.3.0, sha256 ",
        f"the catalog in force is catalog {catalog} (version 1, sha256 {digest[:12]})",
    ):
        assert "".join(said.split()) in message
    assert json.loads(listed.stdout) == []
    assert answer.status_code == 200, answer.text
    assert len(upstream.requests) == 1
    assert "LOCAL_LLM_API_KEY" in warnings


async def test_the_analysis_sessions_preset_serves_a_dollar_day_as_written(tmp_path: Path) -> None:
    """`tollhouse init --preset analysis-sessions` and `serve`, as its header comment tells:
    the analysis model answers 402 `session-required` without a session; a $1 day is
    started from a $2 wallet; inside it, `/v1/authorize` holds nothing and names it."""
    operator_key = generate_key()
    env = environment(
        TOLLHOUSE_DATABASE_URL=sqlite_url(tmp_path / "th.db"),
        TOLLHOUSE_BOOTSTRAP_KEY=operator_key,
    )
    init = await run(tmp_path, env, "init", "--preset", "analysis-sessions")
    assert init.returncode == 0, init.stderr
    with serving(tmp_path, env) as served:
        async with httpx.AsyncClient(base_url=served.base_url, timeout=STARTUP_SECONDS) as http:
            operator = {"Authorization": f"Bearer {operator_key}"}
            customer = await http.post("/v1/customers", json={"name": "Ada"}, headers=operator)
            customer_id = customer.json()["id"]
            await http.post(
                f"/v1/customers/{customer_id}/credits/grants",
                json={"amount_micros": 2_000_000, "idempotency_key": "seed"},
                headers=operator,
            )
            key = await http.post(f"/v1/customers/{customer_id}/keys", json={}, headers=operator)
            own = {"Authorization": f"Bearer {key.json()['key']}"}
            check = {"model": "indicators", "usage": {"requests": 1}}
            outside = await http.post("/v1/authorize", json=check, headers=own)
            started = await http.post(
                "/v1/sessions", json={"product": "analysis-day", "idempotency_key": "day-1"},
                headers=own,
            )  # fmt: skip
            inside = await http.post("/v1/authorize", json=check, headers=own)
            balance = await http.get(f"/v1/customers/{customer_id}/balance", headers=own)
    assert outside.status_code == 402, outside.text
    assert outside.json()["type"].endswith("/session-required")
    assert started.status_code == 201, started.text
    assert inside.status_code == 200, inside.text
    assert inside.json()["hold"] is None
    assert inside.json()["session"]["id"] == started.json()["id"]
    assert inside.json()["session"]["tokens_left"] == 100_000
    assert balance.json()["available_micros"] == 1_000_000


async def test_an_idle_connection_is_kept_for_the_configured_keep_alive(tmp_path: Path) -> None:
    """`TOLLHOUSE_KEEP_ALIVE_SECONDS` reaches uvicorn: with 2 s, a connection idle for 1 s
    serves its next request, one idle for 3.5 s has been closed (the default, 75 s, outlives
    the 60 s idle timeout common to load balancers and clients)."""
    env = environment(
        TOLLHOUSE_DATABASE_URL=sqlite_url(tmp_path / "th.db"), TOLLHOUSE_KEEP_ALIVE_SECONDS="2"
    )
    with serving(tmp_path, env) as served:
        async with Connection(served.base_url) as kept:
            first = await kept.request("GET", "/health")
            await asyncio.sleep(1)
            second = await kept.request("GET", "/health")
            await asyncio.sleep(3.5)
            with pytest.raises(ConnectionError):
                await kept.request("GET", "/health")
    assert (first.status, second.status) == (200, 200)
