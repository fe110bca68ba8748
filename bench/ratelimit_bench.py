"""Rate-limit decisions per second, memory and Redis, next to baselines measured in the same run.

    .venv/bin/python bench/ratelimit_bench.py [--seconds 3] [--redis-url redis://127.0.0.1:6379/15]

(`src/` is put on the path when the package is not installed.)

Baselines: a plain dict update awaited through the same harness (for MemoryStorage; the
tight-loop figure is printed for reference) and raw Redis PING round trips through
the same redis.asyncio client settings (for RedisStorage). Each figure runs for `--seconds`
with 1 and with 32 operations in flight (asyncio tasks on one event loop) over 10,000 keys;
"1 limit" is `hit_all([(rpm, key, 1)])`, "2 limits" is the gateway's rpm + tpm decision.
Redis keys go under `th:rl:bench:` and are deleted afterwards. Without a reachable Redis the
Redis rows are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis

try:
    import tollhouse.ratelimit  # noqa: F401
except ImportError:  # not installed: use this checkout's src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tollhouse.ratelimit import Limit, MemoryStorage, RateLimiter
from tollhouse.ratelimit.storage.redis import RedisStorage

KEYS = 10_000
RPM = Limit(1_000, 60.0)
TPM = Limit(1_000_000, 60.0)
BENCH_PREFIX = "th:rl:bench:"

Op = Callable[[int], Awaitable[object]]


def machine_info() -> str:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"nproc={os.cpu_count()}  cpu={model}\n"
        f"python={platform.python_version()} ({platform.python_implementation()})  "
        f"redis-py={redis.__version__}  platform={platform.platform()}\n"
        f"load average at start={' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


async def rate(op: Op, *, in_flight: int, seconds: float) -> float:
    """Operations per second of `op(i)` with `in_flight` concurrent loops for `seconds`."""
    for i in range(200):  # warm up: connections, script load, caches
        await op(i)
    counts = [0] * in_flight
    deadline = time.perf_counter() + seconds

    async def loop(worker: int) -> None:
        i = worker * 7919
        n = 0
        while time.perf_counter() < deadline:
            await op(i)
            i += 1
            n += 1
        counts[worker] = n

    started = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(in_flight)))
    return sum(counts) / (time.perf_counter() - started)


def dict_baseline(seconds: float) -> float:
    """Plain dict read-modify-write updates per second (the floor of any in-memory limiter)."""
    table: dict[str, int] = {}
    keys = [f"cus_{i}" for i in range(KEYS)]
    n = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        for key in keys[:1000]:
            table[key] = table.get(key, 0) + 1
        n += 1000
        keys.append(keys.pop(0))
    return n / (time.perf_counter() - started)


def row(label: str, value: float, baseline: float | None = None) -> None:
    ratio = f"{value / baseline:6.2f}x of baseline" if baseline else ""
    print(f"  {label:<44} {value:>12,.0f} /s   {ratio}")


def limiter_ops(limiter: RateLimiter) -> tuple[Op, Op]:
    keys = [f"cus_{i}" for i in range(KEYS)]

    async def one(i: int) -> object:
        return await limiter.hit_all([(RPM, keys[i % KEYS] + ":rpm", 1)])

    async def two(i: int) -> object:
        key = keys[i % KEYS]
        return await limiter.hit_all([(RPM, key + ":rpm", 1), (TPM, key + ":tpm", 500)])

    return one, two


async def bench_memory(seconds: float) -> None:
    print("memory://")
    raw = dict_baseline(seconds)
    row("reference: dict update, tight loop", raw)
    table: dict[str, int] = {}
    keys = [f"cus_{i}" for i in range(KEYS)]

    async def dict_update(i: int) -> object:
        key = keys[i % KEYS]
        table[key] = table.get(key, 0) + 1
        return None

    base = await rate(dict_update, in_flight=1, seconds=seconds)
    row("baseline: awaited dict update, same harness", base)
    limiter = RateLimiter(MemoryStorage())
    one, two = limiter_ops(limiter)
    for in_flight in (1, 32):
        row(
            f"decisions, 1 limit, {in_flight} in flight",
            await rate(one, in_flight=in_flight, seconds=seconds),
            base,
        )
        row(
            f"decisions, 2 limits, {in_flight} in flight",
            await rate(two, in_flight=in_flight, seconds=seconds),
            base,
        )
    await limiter.close()


async def bench_redis(url: str, seconds: float) -> None:
    print(f"redis ({url})")
    storage = RedisStorage(url, prefix=BENCH_PREFIX)
    client = storage.client
    try:
        info = await client.info("server")
    except redis.RedisError as exc:
        print(f"  skipped: {exc}")
        await storage.close()
        return
    print(f"  server redis_version={info.get('redis_version')}")
    limiter = RateLimiter(storage)
    one, two = limiter_ops(limiter)

    async def ping(_: int) -> object:
        return await client.ping()

    try:
        for in_flight in (1, 32):
            base = await rate(ping, in_flight=in_flight, seconds=seconds)
            row(f"baseline: PING round trips, {in_flight} in flight", base)
            row(
                f"decisions, 1 limit, {in_flight} in flight",
                await rate(one, in_flight=in_flight, seconds=seconds),
                base,
            )
            row(
                f"decisions, 2 limits, {in_flight} in flight",
                await rate(two, in_flight=in_flight, seconds=seconds),
                base,
            )
    finally:
        async for key in client.scan_iter(match=BENCH_PREFIX + "*", count=1000):
            await client.delete(key)
        await limiter.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("TOLLHOUSE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
    )
    args = parser.parse_args()
    print(machine_info())
    print(f"{args.seconds:g} s per figure, {KEYS:,} keys, one event loop\n")
    await bench_memory(args.seconds)
    print()
    await bench_redis(args.redis_url, args.seconds)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
