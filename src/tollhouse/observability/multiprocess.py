"""Prometheus' multi-process mode for `tollhouse serve --workers N` (`prometheus_client`).

Every worker writes its metric values to files in one directory, named by
`PROMETHEUS_MULTIPROC_DIR`, and `/metrics` (answered by any one worker) sums them
(`observability.metrics.exposition`). `prometheus_client` reads the variable when it is
imported, so `serve` sets it before uvicorn starts the workers (new processes, which import
it afresh): `directory(workers)` makes an empty directory for the run and removes it after,
unless the variable is already set, in which case the directory it names is used as it is
(created if missing; emptying it between runs is then up to whoever set it, as
`prometheus_client`'s documentation asks). One process needs no directory.

This module does not import `prometheus_client` itself but in `process_exited`: importing it
before the variable is set would fix its mode in the importing process.
`process_id` is the process identifier `observability.metrics` gives the client's
multi-process values.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The environment variable naming the multi-process directory (`prometheus_client`'s)."""

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def process_id() -> int:
    """This process's id, kept (and renewed in a forked child): `prometheus_client` asks for
    it on every value it writes in multi-process mode (`MultiProcessValue`'s
    `process_identifier`, `os.getpid` by default), and a system call per value was most of a
    value's cost here (about 8 of 12 microseconds on a busy 2-core machine)."""
    return _pid


def is_multiprocess() -> bool:
    """Whether this process writes its metric values to the multi-process directory."""
    return bool(os.environ.get(MULTIPROC_ENV))


@contextmanager
def directory(workers: int) -> Iterator[str | None]:
    """The multi-process directory of a `serve` with `workers` processes (set in the
    environment while the block runs), or None for one process without one."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        yield given
        return
    if workers == 1:
        yield None
        return
    made = tempfile.mkdtemp(prefix="tollhouse-metrics-")
    os.environ[MULTIPROC_ENV] = made
    try:
        yield made
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(made, ignore_errors=True)


def process_exited() -> None:
    """Tell the multi-process files that this process is gone (`mark_process_dead`: its
    live gauges no longer count); nothing in single-process mode."""
    if is_multiprocess():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
