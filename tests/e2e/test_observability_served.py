"""`tollhouse serve` as production runs it: metrics summed across `--workers 2`, JSON log lines
carrying the request id, and rendered lines on a terminal.

Story: an operator runs `tollhouse serve --workers 2` on PostgreSQL with
`TOLLHOUSE_LOG_FORMAT=json`. Customers call the gateway and are refused by `/v1/authorize`,
each request on a new connection, until both processes have served some. Whichever process answers a
scrape of `/metrics`, it reports the totals of both: exactly the calls, holds, captures and
denials made. Each process wrote its own values (one file each in the multi-process
directory `serve` made, removed when it stops). A call whose first upstream fails logs a
warning, as a JSON line carrying the id the answer's `X-Request-Id` gave.

The same `serve` on a terminal (a pseudo-terminal here) renders that warning for people.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.test_multiprocess import (
    SOURCE_ROOT,
    Server,
    stop,
    wait_until_healthy,
)
from tests.support.catalog import catalog_text
from tests.support.metrics import Scrape
from tests.support.ports import free_port
from tests.support.server import Api
from tests.support.upstream import FakeUpstream

from tollhouse.keys import generate_key

STARTUP_SECONDS = 180.0
"""Bound on both workers serving (each imports, migrates nothing, starts its runtime)."""
DENIALS = 6
HOLD_MICROS = 208
"""test-chat's hold for CALL: its prompt's estimate (8 tokens) and 100 output tokens at 2."""
CALL_MICROS = 26
CALL = {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}
FALLBACK_CALL = {**CALL, "model": "fb-log"}
FALLBACK_WARNING = "fb-log tries its next upstream"
SETTLE_SECONDS = 30.0
SCRAPES = 6


def catalog(directory: Path, upstream: FakeUpstream) -> Path:
    """The test catalog plus `fb-log`, whose first upstream answers 500 (a logged warning)."""
    data = yaml.safe_load(catalog_text(upstream.base_url))
    data["models"]["fb-log"] = {
        **{k: v for k, v in data["models"]["test-chat"].items() if k not in ("upstream",)},
        "upstreams": [
            {"upstream": "fake", "model": "error-500"},
            {"upstream": "fake", "model": "echo", "priority": 2},
        ],
    }
    del data["models"]["fb-log"]["upstream_model"]
    path = directory / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def environment(directory: Path, upstream: FakeUpstream, **settings: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOLLHOUSE_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        TOLLHOUSE_CATALOG=str(catalog(directory, upstream)),
        TOLLHOUSE_TEST_UPSTREAM_KEY="upstream-secret",
        PYTHONPATH=os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
        **settings,
    )
    return env


def launch(env: dict[str, str], directory: Path, *options: str) -> Server:
    port = free_port()
    stdout, stderr = directory / "serve.out", directory / "serve.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tollhouse.cli.main", "serve", "--port", str(port), *options],
            env=env,
            cwd=directory,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    return Server("serve", process, f"http://127.0.0.1:{port}", stdout, stderr)


async def test_two_workers_report_the_sum_and_log_json_lines_with_request_ids(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    database_url = await create_postgres_database()
    operator_key = generate_key()
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = environment(
        tmp_path,
        upstream,
        TOLLHOUSE_DATABASE_URL=database_url,
        TOLLHOUSE_BOOTSTRAP_KEY=operator_key,
        TOLLHOUSE_LOG_FORMAT="json",
        TMPDIR=str(temporary),  # where `serve` makes its multi-process directory
    )
    server = launch(env, tmp_path, "--workers", "2")
    try:
        await wait_until_healthy(server)
        (shared,) = temporary.glob("tollhouse-metrics-*")
        async with Api(server.base_url, operator_key, keep_alive=False) as operator:
            payer = await operator.ok(
                "POST", "/v1/customers", json={"name": "p", "plan": "lifetime"}
            )
            await operator.ok(
                "POST",
                f"/v1/customers/{payer['id']}/credits/grants",
                json={"amount_micros": 1_000_000, "idempotency_key": "seed"},
            )
            payer_key = await operator.ok("POST", f"/v1/customers/{payer['id']}/keys", json={})
            broke = await operator.ok(
                "POST", "/v1/customers", json={"name": "b", "plan": "lifetime"}
            )
            broke_key = await operator.ok("POST", f"/v1/customers/{broke['id']}/keys", json={})

        fresh = httpx.Limits(max_keepalive_connections=0)  # a new connection each request
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=fresh) as http:
            deadline = time.monotonic() + STARTUP_SECONDS  # until both workers serve
            while not _both(seen := _per_process(shared, route="/healthz")):
                assert time.monotonic() < deadline, (seen, server.output())
                await asyncio.gather(*(http.get("/healthz") for _ in range(4)))
            pay = {"Authorization": f"Bearer {payer_key['key']}"}
            answered = 0
            while not _both(_per_process(shared, route="/v1/chat/completions")):
                assert time.monotonic() < deadline, server.output()
                calls = await asyncio.gather(
                    *(http.post("/v1/chat/completions", json=CALL, headers=pay) for _ in range(8))
                )
                assert Counter(c.status_code for c in calls) == {200: 8}, [c.text for c in calls]
                answered += len(calls)
            denials = await asyncio.gather(
                *(
                    http.post(
                        "/v1/authorize",
                        json={"model": "test-chat", "usage": {"input_tokens": 1000}},
                        headers={"Authorization": f"Bearer {broke_key['key']}"},
                    )
                    for _ in range(DENIALS)
                )
            )
            fallback = await http.post("/v1/chat/completions", json=FALLBACK_CALL, headers=pay)

            assert Counter(d.status_code for d in denials) == {402: DENIALS}
            assert fallback.status_code == 200, fallback.text
            answered += 1

            async def scrape() -> Scrape:
                response = await http.get("/metrics")
                assert response.status_code == 200, response.text
                return Scrape(response.text)

            deadline = time.monotonic() + SETTLE_SECONDS  # captures follow the answers
            while (await scrape()).value("tollhouse_ledger_captures_total") < answered:
                assert time.monotonic() < deadline, server.output()
                await asyncio.sleep(0.1)
            scrapes = [await scrape() for _ in range(SCRAPES)]

        chat = {"route": "/v1/chat/completions", "method": "POST"}
        refused = {"route": "/v1/authorize", "status": "402", "reason": "insufficient-credit"}
        for seen in scrapes:
            assert seen.value("tollhouse_http_requests_total", **chat, status="200") == answered
            assert seen.value("tollhouse_http_requests_total", **refused) == DENIALS
            assert seen.value("tollhouse_ledger_holds_total") == answered
            assert seen.value("tollhouse_ledger_hold_micros_total") == answered * HOLD_MICROS
            assert seen.value("tollhouse_ledger_captures_total") == answered
            assert seen.value("tollhouse_ledger_capture_micros_total") == answered * CALL_MICROS
            assert seen.value("tollhouse_ledger_voids_total") == 0
            assert seen.value("tollhouse_upstream_latency_seconds_count", model="fb-log") == 2
            assert seen.value("tollhouse_ready", check="database") == 1
        # each worker wrote its own values; the calls were served by both
        assert sum(_per_process(shared, route="/v1/chat/completions").values()) == answered
    finally:
        await stop(server)
        await drop_postgres_database(database_url)

    assert server.process.returncode == 0, server.output()
    assert not shared.exists()  # `serve` removed its directory
    lines = [line for line in server.stderr.read_text().splitlines() if line.strip()]
    records = [_json_line(line, server) for line in lines]  # every line is one JSON object
    assert all({"event", "level", "timestamp", "logger"} <= record.keys() for record in records)
    (warning,) = [r for r in records if FALLBACK_WARNING in r["event"]]
    assert warning["level"] == "warning"
    assert warning["logger"] == "tollhouse.gateway.proxy"
    assert warning["request_id"] == fallback.headers["x-request-id"]
    assert warning["request_id"] == fallback.headers["x-tollhouse-request-id"]


def _json_line(line: str, server: Server) -> dict[str, object]:
    try:
        record = json.loads(line)
    except ValueError:
        raise AssertionError(f"not a JSON line: {line!r}\n{server.output()}") from None
    assert isinstance(record, dict), line
    return record


def _per_process(shared: Path, **labels: str) -> dict[str, float]:
    """`tollhouse_http_requests_total` with these labels as each process counted it, from its
    own file of the multi-process directory (read alone by `prometheus_client`'s collector)."""
    counts = {}
    for path in shared.glob("counter_*.db"):
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(path, Path(alone) / path.name)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=alone)
            counts[path.stem] = sum(
                sample.value
                for family in registry.collect()
                for sample in family.samples
                if sample.name == "tollhouse_http_requests_total"
                and labels.items() <= sample.labels.items()
            )
    return counts


def _both(counts: dict[str, float]) -> bool:
    """Two processes, and each counted something."""
    return len(counts) == 2 and all(counts.values())


async def test_a_terminal_gets_rendered_log_lines(tmp_path: Path, upstream: FakeUpstream) -> None:
    """`TOLLHOUSE_LOG_FORMAT=auto` (the default) on a terminal: structlog's console lines, with
    the level, the logger, the message and the request id, not JSON."""
    operator_key = generate_key()
    env = environment(
        tmp_path,
        upstream,
        TOLLHOUSE_DATABASE_URL=f"sqlite:///{tmp_path / 'th.db'}",
        TOLLHOUSE_BOOTSTRAP_KEY=operator_key,
        TERM="xterm",
    )
    port = free_port()
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "tollhouse.cli.main", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    written = bytearray()
    server = Server("serve", process, f"http://127.0.0.1:{port}", tmp_path / "-", tmp_path / "-")
    reader = asyncio.create_task(asyncio.to_thread(_read_all, controller, written))
    try:
        await wait_until_healthy(server)
        async with Api(server.base_url, operator_key) as operator:
            customer = await operator.ok(
                "POST", "/v1/customers", json={"name": "p", "plan": "lifetime"}
            )
            await operator.ok(
                "POST",
                f"/v1/customers/{customer['id']}/credits/grants",
                json={"amount_micros": 1_000_000, "idempotency_key": "seed"},
            )
            key = await operator.ok("POST", f"/v1/customers/{customer['id']}/keys", json={})
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            fallback = await http.post(
                "/v1/chat/completions",
                json=FALLBACK_CALL,
                headers={"Authorization": f"Bearer {key['key']}"},
            )
        assert fallback.status_code == 200, fallback.text
        request_id = fallback.headers["x-request-id"]
        deadline = time.monotonic() + SETTLE_SECONDS
        while request_id.encode() not in written:
            assert time.monotonic() < deadline, written.decode(errors="replace")
            await asyncio.sleep(0.05)
    finally:
        await stop(server)
        await reader

    text = _plain(written.decode(errors="replace"))
    (line,) = [line for line in text.splitlines() if FALLBACK_WARNING in line]
    assert not line.lstrip().startswith("{")
    assert "warning" in line
    assert "tollhouse.gateway.proxy" in line
    assert f"request_id={request_id}" in line
    assert "\x1b[" in written.decode(errors="replace")  # coloured, on a terminal


def _read_all(descriptor: int, into: bytearray) -> None:
    """Read a pseudo-terminal until every process holding its other end has closed it."""
    try:
        while True:
            ready, _, _ = select.select([descriptor], [], [], 60)
            if not ready:
                return
            try:
                chunk = os.read(descriptor, 65536)
            except OSError:  # EIO: the other end is closed
                return
            if not chunk:
                return
            into.extend(chunk)
    finally:
        os.close(descriptor)


def _plain(text: str) -> str:
    """`text` without its ANSI colour sequences."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
