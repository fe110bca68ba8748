"""Start real `tollhouse serve` processes in a fraction of a second, for tests that start a
hundred of them: a parent process imports tollhouse once, then forks each server.

A `serve` started with `python -m tollhouse.cli.main serve` spends most of its start
importing (about 1.5 s of CPU on a 2-core machine) and loading the tokenizers' encodings
(`gateway.tokens.warm_up`, about 1.7 s): several seconds when the machine is busy. A forked
child inherits both (the runtime finds the encodings loaded) and runs the very same command line
(`tollhouse serve --port N`, through the CLI's Typer app) in its own OS process, with its own
environment, working directory and output files: migration check, bootstrap, uvicorn, the
runtime's background tasks, everything but the imports, as a fresh process would. Killing
it (SIGKILL included) kills only that server.

The parent (`python tests/support/forked_servers.py`) reads one JSON order per line on stdin
and answers the child's pid on stdout; it ignores SIGCHLD, so the kernel reaps its children
and a dead server's pid disappears at once. `ServerForker` drives it from a test.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


class ForkedProcess:
    """A forked server, with the part of `subprocess.Popen`'s interface the tests use. Its
    exit status is not known (the kernel reaped it): `returncode` is -1 once it is gone."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -1
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                self.returncode = -1

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            time.sleep(0.005)
        return code


class ServerForker:
    """The forking parent, started with `env` (its PYTHONPATH must reach tollhouse and the
    tests); `fork` starts one `tollhouse serve --port port` with `env` in `cwd`, its output to
    `stdout` and `stderr`. Close it to end the parent (not the servers)."""

    def __init__(self, env: dict[str, str]) -> None:
        self._parent = subprocess.Popen(
            [sys.executable, __file__],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def fork(
        self, env: dict[str, str], cwd: Path, port: int, stdout: Path, stderr: Path
    ) -> ForkedProcess:
        order = {
            "env": env,
            "cwd": str(cwd),
            "port": port,
            "stdout": str(stdout),
            "stderr": str(stderr),
        }
        return await asyncio.to_thread(self._order, json.dumps(order))

    def _order(self, line: str) -> ForkedProcess:
        assert self._parent.stdin is not None and self._parent.stdout is not None
        self._parent.stdin.write(line + "\n")
        self._parent.stdin.flush()
        answer = self._parent.stdout.readline()
        assert answer, "the forking parent died"
        return ForkedProcess(int(answer))

    def close(self) -> None:
        if self._parent.stdin is not None:
            self._parent.stdin.close()
        self._parent.wait(timeout=30)


def _serve_forever() -> None:
    import httptools  # noqa: F401  (what `serve` spends its start importing and loading)
    import uvicorn.lifespan.on
    import uvicorn.loops.uvloop
    import uvicorn.protocols.http.httptools_impl  # noqa: F401
    import uvloop  # noqa: F401

    import tollhouse.api.app  # noqa: F401
    from tollhouse.cli.main import app
    from tollhouse.gateway.tokens import warm_up

    warm_up()  # the tokenizers' encodings: the runtime loads them at start, then keeps them

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for line in sys.stdin:
        order: dict[str, Any] = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(app, order)
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()


def _child(app: Any, order: dict[str, Any]) -> None:
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(order["env"])
        os.chdir(order["cwd"])
        for fd, path in ((1, order["stdout"]), (2, order["stderr"])):
            opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(opened, fd)
            os.close(opened)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        sys.argv = ["tollhouse", "serve", "--port", str(order["port"])]
        app(prog_name="tollhouse")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 0
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    _serve_forever()
