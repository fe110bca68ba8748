"""The serving process's garbage-collector settings (`server.heap`), checked in a child
process so this test run's own collector is left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tollhouse.server.heap import COLLECTOR_THRESHOLDS

_CHILD = """
import asyncio, gc, json
from tollhouse.api.app import create_app
from tollhouse.config import Settings
from tollhouse.server.bootstrap import bootstrap
from tollhouse.server.runtime import Runtime

async def main():
    await bootstrap(Settings())
    seen = {"before": list(gc.get_threshold())}
    served = create_app()  # as `tollhouse serve` builds it
    async with served.router.lifespan_context(served):
        seen["serving"] = list(gc.get_threshold())
        seen["frozen"] = gc.get_freeze_count()
    gc.unfreeze()
    gc.set_threshold(*seen["before"])
    embedded = create_app(Runtime(Settings()))  # a library user's app: their process, their GC
    async with embedded.router.lifespan_context(embedded):
        seen["embedded"] = list(gc.get_threshold())
    print(json.dumps(seen))

asyncio.run(main())
"""


def test_a_serving_app_freezes_its_startup_heap_and_raises_the_thresholds(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TOLLHOUSE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'th.db'}",
        "TOLLHOUSE_KEY_SECRET": "s",
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] != list(COLLECTOR_THRESHOLDS)  # CPython's defaults
    assert seen["serving"] == list(COLLECTOR_THRESHOLDS)
    assert seen["frozen"] > 10_000  # modules, classes, functions: everything alive at start-up
    assert seen["embedded"] == seen["before"]
