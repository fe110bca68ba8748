"""An open-loop load generator: requests at a fixed rate, latency from when each was due.

    python bench/paced.py --url http://127.0.0.1:9200/v1/chat/completions --rate 500 \
        --duration 10 --body-file body.json [--key KEY] [--connections 64]

wrk keeps 32 requests in flight, so at saturation its p50 is 32 / throughput (Little's law)
and says more about throughput than about the latency a gateway adds. This script sends
request i at t0 + i / rate whatever happened to the earlier ones, and measures each latency
from that due time, not from when it was actually sent, so a server (or this script) that
falls behind is charged for the wait ("coordinated omission", G. Tene; wrk2 does the same).
At a rate every target sustains, the p50 difference between two targets is the latency one
adds.

Prints one JSON object: rate asked and achieved, requests sent, answered 2xx, errors, the
latency percentiles in ms, and how many requests started more than 1 ms late (a figure above
a few percent means this generator, not the server, was the bottleneck).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from benchkit import percentile


async def run(args: argparse.Namespace) -> dict[str, Any]:
    body = Path(args.body_file).read_bytes()
    headers = {"Content-Type": "application/json"}
    if args.key:
        headers["Authorization"] = f"Bearer {args.key}"
    total = int(args.rate * args.duration)
    latencies: list[float] = []
    errors = 0
    late = 0
    connector = aiohttp.TCPConnector(limit=args.connections, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(due: float) -> None:
            nonlocal errors
            try:
                async with session.post(args.url, data=body) as response:
                    await response.read()
                    ok = 200 <= response.status < 300
            except aiohttp.ClientError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - due)
            else:
                errors += 1

        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.05
        for i in range(total):
            due = start + i / args.rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.001:
                late += 1
            task = loop.create_task(one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    latencies.sort()
    result: dict[str, Any] = {
        "rate": args.rate,
        "achieved_rate": round(total / elapsed, 1),
        "sent": total,
        "ok": len(latencies),
        "errors": errors,
        "late_starts": late,
    }
    if latencies:
        for name, fraction in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99)):
            result[name] = round(percentile(latencies, fraction) * 1000, 3)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=float, required=True, help="requests per second")
    p.add_argument("--duration", type=float, default=10, help="seconds (10)")
    p.add_argument("--body-file", required=True)
    p.add_argument("--key", default="")
    p.add_argument("--connections", type=int, default=64, help="client pool size (64)")
    args = p.parse_args()
    print(json.dumps(uvloop.run(run(args))))


if __name__ == "__main__":
    main()
