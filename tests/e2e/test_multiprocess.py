"""Two `tollhouse serve` processes on one PostgreSQL database and one Redis: the production shape.

Story: an operator runs two identical, stateless tollhouse processes behind a load balancer,
both pointed at the same PostgreSQL (the ledger) and the same Redis (the rate limits), with
the operator key given in `TOLLHOUSE_BOOTSTRAP_KEY`. The first process migrates and installs
that key; the second finds it and installs nothing. Then customers hammer both processes at
once:

- a free customer allowed N text requests a minute fires 3N chat completions, half at each
  process: exactly N are answered, the other 2N get 429 before the upstream is called. Two
  processes do not allow twice the limit;
- a customer whose credits cover exactly K holds fires 4K authorizations, half at each
  process: exactly K are held, the others get 402, and the wallet shows 0 available and
  everything held, never below zero. Captures and voids, sent to either process, settle to
  the exact micro.

The processes are real OS processes started with `python -m tollhouse.cli.main serve`; the
upstream is the FakeUpstream, running in this test's event loop. Their output is printed when
a test fails.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.support.catalog import INPUT_MICROS_PER_TOKEN, OUTPUT_MICROS_PER_TOKEN, write_catalog
from tests.support.ports import free_port
from tests.support.server import Api
from tests.support.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, FakeUpstream

import tollhouse
from tollhouse.keys import generate_key

SOURCE_ROOT = Path(tollhouse.__file__).resolve().parents[1]
STARTUP_SECONDS = 60.0
"""Bound on one process's start (import, migrate, bind); it takes about a second."""
SHUTDOWN_SECONDS = 15.0
"""Bound on a graceful stop after SIGTERM; then the process is killed."""
SETTLE_SECONDS = 15.0
"""Bound on waiting for settlements that a process finishes after answering."""

TEXT_RPM = 10
"""Free plan: text requests per minute. One emission interval is 60/10 = 6 s, far longer
than a burst of 3 * TEXT_RPM concurrent requests takes."""
CHAT_CREDITS_MICROS = 1_000_000
CALL_MICROS = PROMPT_TOKENS * INPUT_MICROS_PER_TOKEN + COMPLETION_TOKENS * OUTPUT_MICROS_PER_TOKEN
"""What one answered chat completion costs: the upstream's usage at test-chat's prices."""

ESTIMATED_INPUT_TOKENS = 1_000
HOLD_MICROS = ESTIMATED_INPUT_TOKENS * INPUT_MICROS_PER_TOKEN
"""One sidecar authorization of test-chat for 1,000 input tokens holds 1,000 micros."""
AFFORDABLE_HOLDS = 10
WALLET_MICROS = AFFORDABLE_HOLDS * HOLD_MICROS
AUTHORIZATIONS = 4 * AFFORDABLE_HOLDS
CAPTURE_MICROS = 600


@dataclass
class Server:
    """One `tollhouse serve` OS process and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        parts = [f"--- {self.name} ({self.base_url}) exit={self.process.returncode}"]
        for label, path in (("stdout", self.stdout), ("stderr", self.stderr)):
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {self.name} {label}:\n{text}")
        return "\n".join(parts)


@dataclass
class Cluster:
    """Servers on one database and one Redis, and an operator client for the first."""

    servers: list[Server]
    operator_key: str
    operator: Api
    upstream: FakeUpstream
    database_url: str

    def url(self, n: int) -> str:
        """Server n mod the number of servers: spreads request n across the processes like a
        round-robin balancer."""
        return self.servers[n % len(self.servers)].base_url

    async def customer(self, *, plan: str, credits_micros: int) -> tuple[str, str]:
        """A new customer on `plan` with `credits_micros` of credits; returns (id, key)."""
        customer = await self.operator.ok(
            "POST", "/v1/customers", json={"name": plan, "plan": plan}
        )
        await self.operator.ok(
            "POST",
            f"/v1/customers/{customer['id']}/credits/grants",
            json={"amount_micros": credits_micros, "idempotency_key": "seed"},
        )
        key = await self.operator.ok("POST", f"/v1/customers/{customer['id']}/keys", json={})
        return customer["id"], key["key"]

    async def balance(self, customer_id: str, *, server: int = 0) -> tuple[int, int]:
        """(available, held) micros as process `server` reads them."""
        response = await self.operator.client.get(
            f"{self.url(server)}/v1/customers/{customer_id}/balance"
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return int(body["available_micros"]), int(body["held_micros"])


def launch(name: str, env: dict[str, str], directory: Path) -> Server:
    port = free_port()
    stdout, stderr = directory / f"{name}.out", directory / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tollhouse.cli.main", "serve", "--port", str(port)],
            env=env,
            cwd=directory,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    return Server(name, process, f"http://127.0.0.1:{port}", stdout, stderr)


async def wait_until_healthy(server: Server) -> None:
    """Poll /healthz until it answers 200; fail with the process's output if it exits or
    takes longer than STARTUP_SECONDS."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_SECONDS
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            assert server.process.poll() is None, f"server exited early\n{server.output()}"
            try:
                if (await http.get(f"{server.base_url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert loop.time() < deadline, f"server not healthy in time\n{server.output()}"
            await asyncio.sleep(0.05)


async def stop(server: Server) -> None:
    """SIGTERM (graceful: uvicorn drains, the runtime settles), then SIGKILL if it hangs."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            await asyncio.to_thread(server.process.wait, SHUTDOWN_SECONDS)
        except subprocess.TimeoutExpired:
            server.process.kill()
            await asyncio.to_thread(server.process.wait)


@asynccontextmanager
async def cluster(
    directory: Path,
    upstream: FakeUpstream,
    redis_url: str,
    *,
    processes: int = 2,
    catalog: Path | None = None,
    **settings: str,
) -> AsyncIterator[Cluster]:
    """`processes` `serve` processes on a fresh PostgreSQL database and `redis_url`; always
    stopped, the database always dropped, and their output printed if the block fails.
    `catalog` is the catalog file (default: the test catalog with `TEXT_RPM`); `settings` are
    more environment variables of the processes (`TOLLHOUSE_...`)."""
    database_url = await create_postgres_database()
    operator_key = generate_key()
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOLLHOUSE_")}
    env.update(
        TOLLHOUSE_DATABASE_URL=database_url,
        TOLLHOUSE_REDIS_URL=redis_url,
        TOLLHOUSE_CATALOG=str(
            catalog or write_catalog(directory, upstream.base_url, text_rpm=TEXT_RPM)
        ),
        TOLLHOUSE_BOOTSTRAP_KEY=operator_key,
        TOLLHOUSE_TEST_UPSTREAM_KEY="upstream-secret",
        PYTHONPATH=os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
        **settings,
    )
    servers: list[Server] = []
    try:
        for number in range(processes):  # one after the other: the first migrates and bootstraps
            servers.append(launch(f"server-{number + 1}", env, directory))
            await wait_until_healthy(servers[-1])
        async with Api(servers[0].base_url, operator_key) as operator:
            yield Cluster(servers, operator_key, operator, upstream, database_url)
    except BaseException:
        for server in servers:
            await stop(server)
            print(server.output())
        raise
    finally:
        for server in servers:
            await stop(server)
        await drop_postgres_database(database_url)


async def eventually(read: Callable[[], Awaitable[Any]], expected: Any) -> Any:
    """Poll `read()` until it returns `expected`, for at most SETTLE_SECONDS; return its last
    answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while (value := await read()) != expected and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return value


def chat_body() -> dict[str, Any]:
    return {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}


async def test_two_processes_share_one_rate_limit(
    tmp_path: Path, upstream: FakeUpstream, redis_url: str
) -> None:
    """3N concurrent chat completions, half at each process, for a customer allowed N a
    minute: exactly N answered (and charged once each), 2N refused with 429 before the
    upstream is called."""
    async with cluster(tmp_path, upstream, redis_url) as c:
        customer_id, key = await c.customer(plan="free", credits_micros=CHAT_CREDITS_MICROS)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(timeout=30, headers=headers) as http:
            for server in range(2):  # warm each process's key cache and connections
                warm = await http.get(f"{c.url(server)}/v1/customers/me")
                assert warm.status_code == 200, warm.text

            responses = await asyncio.gather(
                *(
                    http.post(f"{c.url(n)}/v1/chat/completions", json=chat_body())
                    for n in range(3 * TEXT_RPM)
                )
            )

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: TEXT_RPM, 429: 2 * TEXT_RPM}, [r.text for r in responses]
        answered = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code == 429]
        # one shared window: the answered calls saw remaining 9, 8, ..., 0, each exactly once
        assert sorted(int(r.headers["RateLimit-Remaining"]) for r in answered) == list(
            range(TEXT_RPM)
        )
        for response in refused:
            assert response.json()["error"]["code"] == "rate-limited"
            assert int(response.headers["Retry-After"]) >= 1
            assert response.headers["RateLimit-Remaining"] == "0"
        assert {int(r.headers["RateLimit-Limit"]) for r in responses} == {TEXT_RPM}
        assert len(upstream.requests) == TEXT_RPM
        forwarded_keys = {seen.headers.get("Authorization") for seen in upstream.requests}
        assert forwarded_keys == {"Bearer upstream-secret"}

        charged = (CHAT_CREDITS_MICROS - TEXT_RPM * CALL_MICROS, 0)
        assert await eventually(lambda: c.balance(customer_id, server=1), charged) == charged

    first, second = c.servers
    assert c.operator_key in first.stdout.read_text()  # the first start installed the key
    assert c.operator_key not in second.stdout.read_text()  # the second found it


async def test_two_processes_never_overdraw_one_wallet(
    tmp_path: Path, upstream: FakeUpstream, redis_url: str
) -> None:
    """4K concurrent authorizations, half at each process, on a wallet that covers exactly K
    holds: K held, 3K refused with 402, 0 available and all of it held. Then captures and
    voids through the other process settle to the exact micro, and released credits can be
    held again."""
    async with cluster(tmp_path, upstream, redis_url) as c:
        # lifetime: no rate limit, so only the wallet decides
        customer_id, key = await c.customer(plan="lifetime", credits_micros=WALLET_MICROS)
        headers = {"Authorization": f"Bearer {key}"}
        estimate = {"model": "test-chat", "usage": {"input_tokens": ESTIMATED_INPUT_TOKENS}}
        async with httpx.AsyncClient(timeout=30, headers=headers) as http:

            async def authorize_all(count: int) -> list[httpx.Response]:
                return await asyncio.gather(
                    *(http.post(f"{c.url(n)}/v1/authorize", json=estimate) for n in range(count))
                )

            responses = await authorize_all(AUTHORIZATIONS)

            statuses = Counter(r.status_code for r in responses)
            assert statuses == {200: AFFORDABLE_HOLDS, 402: AUTHORIZATIONS - AFFORDABLE_HOLDS}, [
                r.text for r in responses
            ]
            for response in responses:
                if response.status_code == 402:
                    assert response.json()["type"].endswith("/insufficient-credit")
            held = [(n, r.json()["hold"]) for n, r in enumerate(responses) if r.status_code == 200]
            assert {hold["amount_micros"] for _, hold in held} == {HOLD_MICROS}
            assert len({hold["id"] for _, hold in held}) == AFFORDABLE_HOLDS
            for server in range(2):
                assert await c.balance(customer_id, server=server) == (0, WALLET_MICROS)

            # settle each hold through the process that did NOT authorize it
            captured, voided, still_open = held[:4], held[4:7], held[7:]
            for n, hold in captured:
                response = await http.post(
                    f"{c.url(n + 1)}/v1/holds/{hold['id']}/capture",
                    json={"amount_micros": CAPTURE_MICROS},
                )
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "captured"
            for n, hold in voided:
                response = await http.post(f"{c.url(n + 1)}/v1/holds/{hold['id']}/void")
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "voided"

            spent = len(captured) * CAPTURE_MICROS
            open_micros = len(still_open) * HOLD_MICROS
            available = WALLET_MICROS - spent - open_micros
            for server in range(2):
                assert await c.balance(customer_id, server=server) == (available, open_micros)

            # released credits can be held again, still never beyond the wallet
            again = await authorize_all(AFFORDABLE_HOLDS)
            granted_again = available // HOLD_MICROS
            assert Counter(r.status_code for r in again) == {
                200: granted_again,
                402: AFFORDABLE_HOLDS - granted_again,
            }
            assert await c.balance(customer_id) == (
                available - granted_again * HOLD_MICROS,
                open_micros + granted_again * HOLD_MICROS,
            )

            for hold_id in [hold["id"] for _, hold in still_open] + [
                r.json()["hold"]["id"] for r in again if r.status_code == 200
            ]:
                response = await http.post(f"{c.url(1)}/v1/holds/{hold_id}/void")
                assert response.status_code == 200, response.text

            assert await c.balance(customer_id) == (WALLET_MICROS - spent, 0)


async def test_a_key_revoked_on_one_process_is_refused_by_the_other_at_once(
    tmp_path: Path, upstream: FakeUpstream, redis_url: str
) -> None:
    """Both processes have the key in their 30 s cache; revoking it through the first makes
    the second refuse it within moments (Redis pub/sub), not after the cache TTL. The same
    holds for a plan change: the second process lets the customer use a pro model at once."""
    async with cluster(tmp_path, upstream, redis_url) as c:
        customer_id, key = await c.customer(plan="free", credits_micros=CHAT_CREDITS_MICROS)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(timeout=30, headers=headers) as http:
            me = f"{c.url(1)}/v1/customers/me"
            assert (await http.get(me)).status_code == 200  # cached by process 2

            pro_call = {**chat_body(), "model": "test-chat-pro"}
            pro_url = f"{c.url(1)}/v1/chat/completions"
            assert (await http.post(pro_url, json=pro_call)).status_code == 403
            await c.operator.ok(
                "PUT", f"/v1/customers/{customer_id}/subscription", json={"plan": "pro"}
            )

            async def pro_status() -> int:
                return (await http.post(pro_url, json=pro_call)).status_code

            assert await eventually(pro_status, 200) == 200

            keys = await c.operator.ok("GET", f"/v1/customers/{customer_id}/keys")
            await c.operator.ok("DELETE", f"/v1/keys/{keys[0]['id']}")

            async def status() -> int:
                return (await http.get(me)).status_code

            assert await eventually(status, 401) == 401
