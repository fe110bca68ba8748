"""N processes sharing one Redis key allow the limit once, not N times.

Four OS processes each connect, load the script, report "ready", wait for one "go" line on
stdin (so all 200 hits happen within milliseconds, far inside one 3 s emission interval) and
then hit the same key 50 times against a 20-per-minute limit.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import tollhouse.ratelimit

PROCESSES = 4
HITS_PER_PROCESS = 50
LIMIT_PER_MINUTE = 20

WORKER = """
import asyncio, sys
from tollhouse.ratelimit import Limit, RateLimiter, storage_from_url

async def main(url: str, amount: int, hits: int) -> None:
    limiter = RateLimiter(storage_from_url(url))
    limit = Limit(amount, 60.0)
    await limiter.test(limit, "warmup")  # connect and load the script before the start
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    allowed = 0
    for _ in range(hits):
        allowed += (await limiter.hit(limit, "shared")).allowed
    print(allowed, flush=True)
    await limiter.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


def worker_env() -> dict[str, str]:
    """This interpreter's environment, with the directory holding `tollhouse` importable."""
    source_root = str(Path(tollhouse.ratelimit.__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
    return env


async def test_processes_sharing_a_key_allow_the_limit_exactly_once(redis_url: str) -> None:
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            redis_url,
            str(LIMIT_PER_MINUTE),
            str(HITS_PER_PROCESS),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=worker_env(),
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
            assert line.strip() == b"ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            await worker.stdin.drain()
        outputs = [await asyncio.wait_for(worker.communicate(), timeout=60) for worker in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()

    assert [worker.returncode for worker in workers] == [0] * PROCESSES
    allowed = [int(stdout.strip()) for stdout, _ in outputs]
    assert sum(allowed) == LIMIT_PER_MINUTE
