"""The runtime's background work: `spawn` and `run_here` are both waited for by `drain`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tollhouse.config import Settings
from tollhouse.server.runtime import Runtime


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = Runtime(
        Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'th.db'}", key_secret="s")
    )
    yield runtime
    await runtime.db.dispose()


async def test_drain_waits_for_work_run_in_place(runtime: Runtime) -> None:
    release = asyncio.Event()
    done: list[str] = []

    async def settle() -> None:
        await release.wait()
        done.append("settled")

    async def request() -> None:
        await runtime.run_here(settle(), name="settle req_1")

    task = asyncio.create_task(request())
    await asyncio.sleep(0)
    drained = asyncio.create_task(runtime.drain())
    await asyncio.sleep(0.01)

    assert not drained.done()  # the settlement is still under way
    release.set()
    await asyncio.wait_for(drained, 5)
    assert done == ["settled"] and task.done()


async def test_a_failure_in_place_is_logged_not_raised(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        await runtime.run_here(fails(), name="settle req_2")

    assert "settle req_2 failed" in caplog.text
    await asyncio.wait_for(runtime.drain(), 5)  # nothing left to wait for
