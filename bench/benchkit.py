"""Plumbing for bench/gateway_bench.py: processes, readiness, wrk, CPU accounting, machine info.

Standard library only, so the harness runs under any Python 3.11; the servers it starts run
under the project's virtualenv.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
WRK_INSTALL_HINT = "wrk is not installed: apt-get update && apt-get install -y wrk"


class Proc:
    """A server started in its own session (process group); its output goes to log files.

    `stop()` signals the whole group it leads (SIGTERM, then SIGKILL after `grace` seconds),
    which also ends worker processes it forked; it never touches any other process.
    """

    def __init__(
        self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log_dir: Path
    ) -> None:
        self.name = name
        self.argv = argv
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self._out = self.stdout_path.open("wb")
        self._err = self.stderr_path.open("wb")
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )
        self.pgid = self.popen.pid  # start_new_session: the child leads a new group

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 10.0) -> int | None:
        """Stop the process group; returns the leader's exit code."""
        if self.alive():
            _killpg(self.pgid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _killpg(self.pgid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        # Workers that outlived their leader (same group) are ended too.
        if group_pids(self.pgid):
            _killpg(self.pgid, signal.SIGKILL)
        self._out.close()
        self._err.close()
        return self.popen.returncode

    def tail(self, lines: int = 40) -> str:
        """The last lines of stderr (or stdout when stderr is empty)."""
        for path in (self.stderr_path, self.stdout_path):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if text.strip():
                return "\n".join(text.rstrip().splitlines()[-lines:])
        return "(no output)"


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _processes() -> Iterator[tuple[int, str, list[str]]]:
    """`(pid, command, fields)` of each live process, from /proc/<pid>/stat: `fields` are
    the ones after the command name, [state, ppid, pgrp, ...]."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        end = raw.rindex(")")
        yield int(entry.name), raw[raw.index("(") + 1 : end], raw[end + 2 :].split()


def _cpu_seconds(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def group_pids(pgid: int) -> list[int]:
    """Live pids whose process group is `pgid` (from /proc)."""
    return [pid for pid, _, fields in _processes() if int(fields[2]) == pgid and fields[0] != "Z"]


def group_cpu_seconds(pgid: int) -> float:
    """User+system CPU seconds used so far by the live processes of a group."""
    return sum(_cpu_seconds(fields) for _, _, fields in _processes() if int(fields[2]) == pgid)


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of the live processes of a group, summed (VmRSS from /proc)."""
    total = 0
    for pid in group_pids(pgid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024  # kB
    return total


class PeakRss:
    """Samples a process group's RSS every `interval` seconds in a thread while in a `with`
    block; `peak_bytes` is the largest sum seen."""

    def __init__(self, pgid: int | None, interval: float = 0.25) -> None:
        self.pgid, self.interval, self.peak_bytes = pgid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while self.pgid:
            self.peak_bytes = max(self.peak_bytes, group_rss_bytes(self.pgid))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


STORE_COMMANDS = ("postgres", "redis-server")
"""Process names of the stores a target may use (PostgreSQL's backends, Redis)."""


def store_cpu_seconds() -> float:
    """User+system CPU seconds used so far by this machine's PostgreSQL and Redis processes."""
    return sum(
        _cpu_seconds(fields) for _, command, fields in _processes() if command in STORE_COMMANDS
    )


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def http_request(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One HTTP request; returns (status, body). Raises OSError when nothing answers."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from exc


def wait_ready(proc: Proc, url: str, timeout: float) -> tuple[bool, str]:
    """Poll `url` until the server answers anything below 500; False when it exits or times out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not proc.alive():
            return False, f"exited with code {proc.popen.returncode}"
        try:
            status, _ = http_request(url, timeout=2.0)
        except (OSError, TimeoutError) as exc:
            last = str(exc)
        else:
            if status < 500:
                return True, f"HTTP {status}"
            last = f"HTTP {status}"
        time.sleep(0.2)
    return False, f"not ready after {timeout:.0f} s ({last})"


# --- wrk ---------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    """What one wrk run measured; latencies in milliseconds."""

    requests_per_s: float
    p50_ms: float
    p75_ms: float | None
    p90_ms: float | None
    p99_ms: float
    requests: int
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    wrk_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    upstream_cpu_s: float = 0.0
    store_cpu_s: float = 0.0
    """PostgreSQL and Redis, when the target uses them (`run_wrk(..., stores=True)`)."""
    machine_busy_s: float = 0.0
    wall_s: float = 0.0
    server_peak_rss_bytes: int = 0
    """The server's process group, all processes summed, sampled every 0.25 s."""
    raw: str = ""

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        return self.server_cpu_s * 1000 / self.requests if self.requests else None

    @property
    def store_cpu_ms_per_request(self) -> float | None:
        return self.store_cpu_s * 1000 / self.requests if self.requests else None

    @property
    def foreign_cpu_percent(self) -> float:
        """CPU used during the run by processes that are not part of the benchmark, in % of
        one core: other work on the machine that disturbed the measurement."""
        ours = self.wrk_cpu_s + self.server_cpu_s + self.upstream_cpu_s + self.store_cpu_s
        return max(0.0, self.machine_busy_s - ours) * 100 / self.wall_s if self.wall_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_per_s": round(self.requests_per_s, 1),
            "p50_ms": self.p50_ms,
            "p75_ms": self.p75_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "requests": self.requests,
            "non_2xx": self.non_2xx,
            "socket_errors": self.socket_errors,
            "server_cpu_s": round(self.server_cpu_s, 3),
            "server_cpu_ms_per_request": _round(self.server_cpu_ms_per_request, 4),
            "upstream_cpu_s": round(self.upstream_cpu_s, 3),
            "store_cpu_s": round(self.store_cpu_s, 3),
            "store_cpu_ms_per_request": _round(self.store_cpu_ms_per_request, 4),
            "wrk_cpu_s": round(self.wrk_cpu_s, 3),
            "foreign_cpu_percent": round(self.foreign_cpu_percent, 1),
            "wall_s": round(self.wall_s, 3),
            "server_peak_rss_mib": round(self.server_peak_rss_bytes / 2**20, 1),
            "wrk_output": self.raw,
        }


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of a non-empty ascending list (`fraction` in 0..1)."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"unknown wrk duration {text!r}")
    return round(float(match.group(1)) * _UNITS_MS[match.group(2)], 4)


def parse_wrk(output: str) -> WrkResult:
    """Parse `wrk --latency` output. Raises ValueError when it has no result."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if rps is None:
        raise ValueError("wrk printed no Requests/sec line")
    percentiles: dict[str, float] = {}
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.MULTILINE):
        percentiles[pct] = _to_ms(value)
    total = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = {}
    if sock is not None:
        socket_errors = dict(
            zip(
                ("connect", "read", "write", "timeout"),
                (int(g) for g in sock.groups()),
                strict=True,
            )
        )
    if "50" not in percentiles or "99" not in percentiles:
        raise ValueError("wrk printed no latency distribution (was --latency given?)")
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p75_ms=percentiles.get("75"),
        p90_ms=percentiles.get("90"),
        p99_ms=percentiles["99"],
        requests=int(total.group(1)) if total else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
        raw=output,
    )


def run_wrk(
    url: str,
    script: Path,
    *,
    duration: float,
    connections: int,
    threads: int,
    env: dict[str, str],
    server_pgid: int | None = None,
    upstream_pgid: int | None = None,
    stores: bool = False,
) -> WrkResult:
    """Run wrk once against `url` and measure the CPU the server, upstream, wrk, the stores
    (PostgreSQL and Redis, with `stores=True`: the target's own work) and the rest of the
    machine used meanwhile. Raises RuntimeError when wrk fails."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError(WRK_INSTALL_HINT)
    argv = [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{duration:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    _last_child_cpu()  # children reaped before this run are not wrk
    server0 = group_cpu_seconds(server_pgid) if server_pgid else 0.0
    upstream0 = group_cpu_seconds(upstream_pgid) if upstream_pgid else 0.0
    stores0 = store_cpu_seconds() if stores else 0.0
    busy0 = machine_busy_seconds()
    t0 = time.monotonic()
    with (
        PeakRss(server_pgid) as rss,
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc,
    ):
        try:
            out, err = proc.communicate(timeout=duration + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise RuntimeError("wrk did not finish in time") from None
    wall = time.monotonic() - t0
    busy = machine_busy_seconds() - busy0
    server_cpu = group_cpu_seconds(server_pgid) - server0 if server_pgid else 0.0
    upstream_cpu = group_cpu_seconds(upstream_pgid) - upstream0 if upstream_pgid else 0.0
    store_cpu = store_cpu_seconds() - stores0 if stores else 0.0
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {err.decode(errors='replace')[-500:]}")
    result = parse_wrk(text)
    result.wall_s = wall
    result.machine_busy_s = busy
    result.server_cpu_s = server_cpu
    result.upstream_cpu_s = upstream_cpu
    result.store_cpu_s = store_cpu
    result.wrk_cpu_s = _last_child_cpu()
    result.server_peak_rss_bytes = rss.peak_bytes
    return result


_children_cpu_seen = 0.0


def _last_child_cpu() -> float:
    """CPU seconds of the child that was reaped last (children's rusage grows only on reap)."""
    global _children_cpu_seen
    times = os.times()
    total = times.children_user + times.children_system
    delta, _children_cpu_seen = total - _children_cpu_seen, total
    return delta


def wrk_version() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        return "missing"
    res = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    return (res.stdout or res.stderr).splitlines()[0].strip() if (res.stdout or res.stderr) else "?"


# --- machine -----------------------------------------------------------------------------------


def machine_info(python: Path, extra_pythons: dict[str, Path] | None = None) -> dict[str, Any]:
    """nproc, CPU model, memory, kernel, Python and package versions of the server venvs."""
    cpu_model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    info: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "os": _os_name(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "wrk": wrk_version(),
        "harness_python": platform.python_version(),
        "server_python": package_versions(
            python,
            [
                "uvicorn",
                "starlette",
                "fastapi",
                "aiohttp",
                "uvloop",
                "httptools",
                "granian",
                "tollhouse",
            ],
        ),
    }
    for name, py in (extra_pythons or {}).items():
        info[name] = package_versions(py, ["litellm"])
    return info


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def package_versions(python: Path, packages: list[str]) -> dict[str, str]:
    """{"python": "3.11.7", pkg: version or "missing"} as seen by another interpreter."""
    code = (
        "import importlib.metadata as m, json, platform\n"
        f"out = {{'python': platform.python_version()}}\n"
        f"for p in {packages!r}:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: out[p] = 'missing'\n"
        "print(json.dumps(out))\n"
    )
    try:
        res = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        return dict(json.loads(res.stdout))
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {"python": "unavailable"}
