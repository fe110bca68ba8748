"""A PostgreSQL server of the test's own, on a free port, that the test may stop and restart.

Fault tests must never stop the shared PostgreSQL the other tests use: this runs `initdb`
into a fresh directory, then `pg_ctl start` with its own port and socket directory, trust
authentication on 127.0.0.1 only, and `fsync=off` (nothing here must survive a power loss of
the machine; a commit is still written to the WAL before it is acknowledged, so it survives
the server's crash, `synchronous_commit` being on). `stop(mode)` is `pg_ctl stop -m
fast|immediate`: `fast` disconnects every client and shuts down cleanly, `immediate` kills the
server processes (a crash; recovery replays the WAL at the next `start`).

PostgreSQL refuses to run as root: under root, every command runs as the `postgres` OS user
(`runuser`), which owns the directory. Tests skip when the binaries are not installed (fail
under CI=true, like the other services).
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import asyncpg

from tests.conftest import unavailable
from tests.support.ports import free_port
from tollhouse.storage.migrate import upgrade_async

STARTUP_SECONDS = 60
"""Bound on `pg_ctl start`/`restart` waiting for the server to accept connections."""
DATABASE = "tollhouse"

Mode = Literal["smart", "fast", "immediate"]


def _bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found is not None:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory; `url` stays the same across restarts."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="th-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{DATABASE}"
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            self._as_owner = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.directory, user="postgres", group="postgres")

    @property
    def options(self) -> str:
        """The server's own options (`pg_ctl -o`)."""
        return (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off "
            "-c max_connections=200"
        )

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as_owner, str(self.bin_dir / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{program} {' '.join(args)} failed:\n{done.stderr}"

    async def create(self) -> None:
        """initdb, start, and create the migrated database `url` names."""
        await asyncio.to_thread(
            self._run,
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
        )
        await self.start()
        admin = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await admin.close()
        await upgrade_async(self.url)

    async def start(self) -> None:
        """`pg_ctl start`, waiting until the server accepts connections."""
        await asyncio.to_thread(
            self._run, "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self.options,
            "-w", "-t", str(STARTUP_SECONDS), "start",
        )  # fmt: skip

    async def stop(self, mode: Mode = "fast") -> None:
        """`pg_ctl stop -m mode`, waiting until the server is gone."""
        await asyncio.to_thread(
            self._run, "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t",
            str(STARTUP_SECONDS), "stop",
        )  # fmt: skip

    def is_running(self) -> bool:
        command = [*self._as_owner, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "status"]
        return subprocess.run(command, capture_output=True, check=False).returncode == 0

    def remove(self) -> None:
        """Stop the server at once if it runs, and delete its directory."""
        if self.data.exists() and self.is_running():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def output(self) -> str:
        """The server's log (for a failing test's report)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@asynccontextmanager
async def own_postgres() -> AsyncIterator[PostgresServer]:
    """A created and started `PostgresServer`, removed at the end whatever its state."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        unavailable("PostgreSQL binaries", FileNotFoundError("pg_ctl is not installed"))
        raise AssertionError("unreachable")
    server = PostgresServer(bin_dir)
    try:
        await server.create()
        yield server
    finally:
        await asyncio.to_thread(server.remove)
