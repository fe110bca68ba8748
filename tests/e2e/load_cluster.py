"""Shared pieces of the load tests: a catalog with the models they need, a cluster of four
`tollhouse serve` processes on it, and a pool of HTTP clients.

`load-chat` is priced by output tokens only (1 micro a token, input free) on the upstream
model `max-usage`, which reports `max_tokens` output tokens: a gateway call with
`max_tokens = n` holds exactly `n` micros and captures exactly `n` (nothing is released), and
`POST /v1/authorize` with `usage.output_tokens = n` holds `n`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from multidict import CIMultiDictProxy
from tests.e2e.test_multiprocess import Cluster, cluster
from tests.support.catalog import catalog_text
from tests.support.upstream import FakeUpstream

PROCESSES = 4
LOAD_MODEL = "load-chat"
REQUEST_SECONDS = 120.0
"""Bound on one request under load on a slow shared machine (not a latency target)."""


def load_catalog(directory: Path, upstream: FakeUpstream, **changes: Any) -> Path:
    """The test catalog plus `load-chat`; `changes` are merged into its top-level sections
    (e.g. `plans={...}` adds plans). Written to `directory/load-catalog.yaml`."""
    document = yaml.safe_load(catalog_text(upstream.base_url))
    document["models"][LOAD_MODEL] = {
        "category": "text",
        "upstream": "fake",
        "upstream_model": "max-usage",
        "max_output_tokens": 1_000,
        "price": {"input_per_1m_tokens": "0", "output_per_1m_tokens": "1"},
    }
    for section, entries in changes.items():
        document.setdefault(section, {}).update(entries)
    path = directory / "load-catalog.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@asynccontextmanager
async def load_cluster(
    directory: Path, upstream: FakeUpstream, redis_url: str, **changes: Any
) -> AsyncIterator[Cluster]:
    """`PROCESSES` serve processes on a fresh PostgreSQL database, on `load_catalog`."""
    catalog = load_catalog(directory, upstream, **changes)
    async with cluster(
        directory, upstream, redis_url, processes=PROCESSES, catalog=catalog
    ) as running:
        yield running


@dataclass(frozen=True)
class Reply:
    """An answer, read whole: status, header fields (case-insensitive) and body text."""

    status_code: int
    headers: CIMultiDictProxy[str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class Http:
    """An aiohttp client pool authenticated with one key. (aiohttp, not httpx: httpx's
    pool intermittently fails requests with `ReadError(ClosedResourceError)` at a few
    hundred connections, encode/httpx#2337, which would fail these tests for the client's
    sake.)"""

    def __init__(self, key: str, connections: int) -> None:
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {key}"},
            timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS),
            connector=aiohttp.TCPConnector(limit=connections),
        )

    async def request(self, method: str, url: str, json: Any = None) -> Reply:
        async with self._session.request(method, url, json=json) as response:
            return Reply(response.status, response.headers, await response.text())

    async def post(self, url: str, json: Any = None) -> Reply:
        return await self.request("POST", url, json)

    async def get(self, url: str) -> Reply:
        return await self.request("GET", url)

    async def __aenter__(self) -> Http:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()


def client(key: str, connections: int) -> Http:
    """An HTTP client authenticated with `key`, pooling up to `connections` connections."""
    return Http(key, connections)
