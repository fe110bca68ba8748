"""SIGTERM: `tollhouse serve` stops accepting, lets what is under way finish, settles it, exits.

Story: an operator deploys a new version; the orchestrator sends SIGTERM to a process that
is serving slow calls and streams. The process stops taking new connections at once, lets
each call under way finish (within `TOLLHOUSE_SHUTDOWN_GRACE_SECONDS`), charges each exactly
once, writes every usage event, and exits. When the grace is shorter than a stream, the
stream is cut at the end of the grace and still charged for what it delivered; a call still
waiting for its upstream has its hold voided: nothing stays held.

The process is a real `python -m tollhouse.cli.main serve` on the shared PostgreSQL (a
fresh database); the upstream is the FakeUpstream, slowed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.test_multiprocess import SOURCE_ROOT, Server, launch, stop, wait_until_healthy
from tests.support.catalog import INPUT_MICROS_PER_TOKEN, OUTPUT_MICROS_PER_TOKEN, write_catalog
from tests.support.fault_checks import read_books
from tests.support.server import Api
from tests.support.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, FakeUpstream

from tollhouse.keys import generate_key

SLOW_SECONDS = 3.0
"""The upstream's `slow` answers after this; a `slow-stream` sends a chunk every tenth of it."""
SLOW_CALL_MICROS = 10_000
"""test-chat-slow's price per request ($0.01)."""
STREAM_MICROS = PROMPT_TOKENS * INPUT_MICROS_PER_TOKEN + COMPLETION_TOKENS * OUTPUT_MICROS_PER_TOKEN
TERMINATED = -signal.SIGTERM
"""uvicorn re-raises the signal it caught once it has shut down gracefully, so a process that
drained and stopped cleanly still ends "killed by SIGTERM" (what a supervisor expects)."""
EXIT_MARGIN_SECONDS = 15.0
"""Beyond the grace, what a slow machine may add to an exit (starting and stopping Python)."""


@asynccontextmanager
async def served(
    tmp_path: Path, upstream: FakeUpstream, grace_seconds: int
) -> AsyncIterator[tuple[Server, str, str, str]]:
    """One `serve` process with a shutdown grace of `grace_seconds`, on a fresh database;
    yields it, the database URL, a customer id and its key (lifetime plan: no rate limit;
    $10 of credits)."""
    database_url = await create_postgres_database()
    operator_key = generate_key()
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOLLHOUSE_")}
    env.update(
        TOLLHOUSE_DATABASE_URL=database_url,
        TOLLHOUSE_CATALOG=str(write_catalog(tmp_path, upstream.base_url)),
        TOLLHOUSE_BOOTSTRAP_KEY=operator_key,
        TOLLHOUSE_TEST_UPSTREAM_KEY="upstream-secret",
        TOLLHOUSE_SHUTDOWN_GRACE_SECONDS=str(grace_seconds),
        PYTHONPATH=os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    server = launch("server", env, tmp_path)
    try:
        await wait_until_healthy(server)
        async with Api(server.base_url, operator_key) as operator:
            customer = await operator.ok(
                "POST", "/v1/customers", json={"name": "c", "plan": "lifetime"}
            )
            await operator.ok(
                "POST",
                f"/v1/customers/{customer['id']}/credits/grants",
                json={"amount_micros": 10_000_000, "idempotency_key": "seed"},
            )
            key = await operator.ok("POST", f"/v1/customers/{customer['id']}/keys", json={})
        yield server, database_url, customer["id"], key["key"]
    except BaseException:
        await stop(server)
        print(server.output())
        raise
    finally:
        await stop(server)
        await drop_postgres_database(database_url)


def chat(model: str, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


async def until(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def exit_code(server: Server, seconds: float) -> int:
    """Wait for the process to exit within `seconds`; its exit code."""
    try:
        return await asyncio.to_thread(server.process.wait, seconds)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"not exited within {seconds} s\n{server.output()}") from None


async def test_sigterm_drains_calls_and_streams_and_charges_each_once(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """SIGTERM while 4 slow calls and 4 slow streams are under way: new connections are
    refused, every call and stream completes (200, whole), the process exits within the
    grace, each is captured exactly once at its price, its usage is stored, and the ledger's
    invariants hold."""
    upstream.slow_seconds = SLOW_SECONDS
    grace = 30
    async with served(tmp_path, upstream, grace) as (server, database_url, customer_id, key):
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as http:

            async def whole() -> httpx.Response:
                return await http.post(
                    "/v1/chat/completions", json=chat("test-chat-slow", stream=False)
                )

            async def streamed() -> tuple[int, str]:
                body = chat("test-chat-slow-stream", stream=True)
                async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                    text = "".join([part async for part in response.aiter_text()])
                return response.status_code, text

            calls = [asyncio.create_task(whole()) for _ in range(4)]
            streams = [asyncio.create_task(streamed()) for _ in range(4)]
            await until(lambda: len(upstream.requests) == 8)
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(1.0)  # uvicorn notices within 0.1 s, then closes the socket
            with pytest.raises(httpx.TransportError):
                async with httpx.AsyncClient(timeout=5) as fresh:
                    await fresh.get(f"{server.base_url}/healthz")
            answers = await asyncio.gather(*calls)
            streamed_answers = await asyncio.gather(*streams)
        assert await exit_code(server, grace + EXIT_MARGIN_SECONDS) == TERMINATED, server.output()
        took = time.monotonic() - signalled
        books = await read_books(database_url, customer_id)

    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    for status, text in streamed_answers:
        assert status == 200
        assert "data: [DONE]" in text
        assert f": x-tollhouse-cost-micros={STREAM_MICROS}" in text
    assert took < grace, f"exit took {took:.1f} s, beyond the grace of {grace} s"
    assert "Traceback" not in server.output(), server.output()
    assert books.problems == []
    assert books.holds == {"captured": 8}
    assert books.captured_micros == 4 * SLOW_CALL_MICROS + 4 * STREAM_MICROS
    calls_counted = [event for event in books.events if event.endswith(":api_calls")]
    assert len(calls_counted) == 8
    assert set(books.events.values()) == {1}


async def test_at_the_end_of_the_grace_streams_are_cut_and_settled_and_waiting_calls_voided(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """A grace of 2 s, SIGTERM while 2 streams wait forever after their first chunk and 2
    calls wait 10 s for their upstream: the process exits within the grace, each stream is captured once for what it delivered (counted
    locally, marked interrupted), each waiting call's hold is voided, and nothing is held."""
    upstream.slow_seconds = 10.0
    grace = 2
    async with served(tmp_path, upstream, grace) as (server, database_url, customer_id, key):
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as http:

            async def whole() -> int | str:
                try:
                    body = chat("test-chat-slow", stream=False)
                    return (await http.post("/v1/chat/completions", json=body)).status_code
                except httpx.TransportError as exc:
                    return type(exc).__name__

            async def streamed() -> str:
                body = chat("test-chat-gated", stream=True)
                text = ""
                try:
                    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                        assert response.status_code == 200
                        async for part in response.aiter_text():
                            text += part
                except httpx.TransportError:
                    pass
                return text

            calls = [asyncio.create_task(whole()) for _ in range(2)]
            streams = [asyncio.create_task(streamed()) for _ in range(2)]
            await until(lambda: len(upstream.requests) == 4)
            await asyncio.sleep(0.5)  # the streams' first chunks are out
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert await exit_code(server, grace + EXIT_MARGIN_SECONDS) == TERMINATED, (
                server.output()
            )
            took = time.monotonic() - signalled
            cut_calls = await asyncio.gather(*calls)
            cut_streams = await asyncio.gather(*streams)
        upstream.gate.set()
        books = await read_books(database_url, customer_id)

    assert took < grace + EXIT_MARGIN_SECONDS
    assert all(answer != 200 for answer in cut_calls), cut_calls
    assert all("Hello" in text and "[DONE]" not in text for text in cut_streams), cut_streams
    assert books.problems == []
    assert books.holds == {"captured": 2, "voided": 2}, books.holds
    assert books.captured_micros > 0
    assert len([event for event in books.events if event.endswith(":api_calls")]) == 2
