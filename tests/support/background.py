"""Hold an async context open on an event loop in another thread, for synchronous tests.

Synchronous clients (Schemathesis calls with `requests`) would block a server running in the
test's own event loop; `in_background` runs the server's loop in a thread instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def in_background(factory: Callable[[], AbstractAsyncContextManager[T]]) -> Iterator[T]:
    """Enter `factory()` on a new event loop in a thread; give its value; exit it there.

    An error while entering (or a pytest skip) is raised here, in the caller's thread."""
    entered: Future[T] = Future()
    stopping: Future[None] = Future()

    async def hold() -> None:
        loop = asyncio.get_running_loop()
        release = asyncio.Event()
        stopping.add_done_callback(lambda _: loop.call_soon_threadsafe(release.set))
        try:
            async with factory() as value:
                entered.set_result(value)
                await release.wait()
        except BaseException as exc:
            if not entered.done():
                entered.set_exception(exc)
                return
            raise

    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(hold())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="background-loop", daemon=True)
    thread.start()
    try:
        yield entered.result()
    finally:
        stopping.set_result(None)
        thread.join()
    if failure:
        raise failure[0]
