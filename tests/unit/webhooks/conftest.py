"""Webhook fixtures: a clock at the real time, a local receiver, an HTTP client.

The clock starts at the real time (whole seconds) so that the reference library's verifier,
which checks a delivery's timestamp against the real clock, accepts a first attempt; tests
move it forward to drive the retry schedule.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from tests.support.receiver import WebhookReceiver

from tollhouse.clock import FrozenClock


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    started = WebhookReceiver()
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
