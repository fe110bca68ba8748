"""One command to measure the tollhouse gateway against a bare proxy and LiteLLM.

    .venv/bin/python bench/gateway_bench.py [--duration 15] [--connections 32]
        [--targets upstream,bare,litellm,tollhouse-sqlite,tollhouse-pg] [--stream [usage|plain]]
        [--repeat 1] [--rate 500] [--one-connection-rate 100]

It starts the fake upstream (bench/fake_upstream.py, port 9100), then for each target: starts
the server, waits until it answers, sends one real request (preflight: must be 200), warms up
with wrk for --warmup seconds, runs wrk (--threads 1, --connections 32, --duration s,
--latency), then, if the target's throughput is at least twice --rate, sends requests at the
fixed --rate for --duration seconds (bench/paced.py, open loop) and stops the server. It prints
one row per target (req/s, p50, p99, errors, the server's CPU per request, CPU used by
unrelated processes meanwhile), the latency at the fixed rate, the ratios tollhouse vs bare
and tollhouse vs LiteLLM, machine information, and writes everything as JSON to
bench/results/<timestamp>.json (server logs in bench/results/<timestamp>-logs/).

Targets (ports): upstream (9100, the fake upstream itself), bare (9201, bench/bare_proxy.py
on uvicorn), bare-granian (9202, the same app on granian; not in the default set), litellm
(9300, needs bench/setup_litellm.sh once), tollhouse-sqlite and tollhouse-pg (9200, the
gateway via its CLI; tollhouse-pg and tollhouse-pg-2 need PostgreSQL on 127.0.0.1:5432 and
Redis on 127.0.0.1:6379, and run `serve --workers 1` and `--workers 2`: two processes share
the one customer).
tollhouse-sqlite-session (9200; not in the default set) is tollhouse-sqlite with the model
requiring a flat session (`SESSION_YAML`): the customer starts one before the load, and every
call passes the session check and is paid by it; compare it with tollhouse-sqlite in the same
run (`--targets tollhouse-sqlite,tollhouse-sqlite-session`).

A target that fails to start or to answer is reported with its stderr; the others still run.
Only 127.0.0.1 is ever contacted; every process started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit
from benchkit import Proc, WrkResult

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
HOST = "127.0.0.1"
UPSTREAM_PORT = 9100
TOLLHOUSE_PORT = 9200
BARE_PORT = 9201
BARE_GRANIAN_PORT = 9202
LITELLM_PORT = 9300
LITELLM_MASTER_KEY = "sk-bench-master"  # matches bench/litellm_config.yaml
LITELLM_VENV = BENCH / ".venv-litellm"
MODEL = "bench-model"
CHAT_PATH = "/v1/chat/completions"
ALL_TARGETS = (
    "upstream",
    "bare",
    "bare-granian",
    "litellm",
    "tollhouse-sqlite",
    "tollhouse-sqlite-session",
    "tollhouse-pg",
    "tollhouse-pg-2",
)
DEFAULT_TARGETS = "upstream,bare,litellm,tollhouse-sqlite,tollhouse-pg,tollhouse-pg-2"
PG_PROCESSES = {"tollhouse-pg": 1, "tollhouse-pg-2": 2}
"""`serve --workers` of each PostgreSQL + Redis target; the processes share the one customer,
so its wallet is written by all of them."""
# Goals from the issue: tollhouse vs the bare proxy and vs LiteLLM, on SQLite and PG+Redis.
GOAL_THROUGHPUT_VS_BARE_PCT = 50.0
GOAL_VS_LITELLM_X = 20.0
GOAL_P50_DELTA_MS = 1.0

CATALOG_YAML = f"""\
# Written by bench/gateway_bench.py: one model on the fake upstream, limits so large that the
# rate limiter runs on every request but never denies.
version: "bench-1"
currency: usd
default_plan: bench

plans:
  bench:
    rank: 0
    price: "0"
    interval: month
    rate_limit_multiplier: 1
    included_credits: "0"
    description: "Benchmark plan: huge limits."

categories:
  text:
    requests_per_minute: 100000000
    tokens_per_minute: 10000000000

upstreams:
  fake:
    base_url: http://{HOST}:{UPSTREAM_PORT}/v1

models:
  {MODEL}:
    category: text
    upstream: fake
    upstream_model: {MODEL}
    price:
      input_per_1m_tokens: "0.15"
      output_per_1m_tokens: "0.60"
"""
BENCH_PLAN = "bench"
SESSION_YAML = f"""
session_products:
  bench-session:
    price: "1.00"
    duration: 86400
    max_tokens: 1000000000000
    models: [{MODEL}]
    required: true
"""
"""Appended to the catalog of tollhouse-sqlite-session: the model requires a session that
no benchmark exhausts."""


class TargetFailed(Exception):
    """A target could not be set up or measured; the message says why."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output
        self.info: dict[str, Any] = {}


@dataclass
class Running:
    """A target ready to be measured."""

    url: str
    pgid: int
    key: str | None = None
    proc: Proc | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Harness:
    args: argparse.Namespace
    python: Path
    log_dir: Path
    upstream: Proc | None = None
    procs: list[Proc] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        proc = Proc(name, argv, env=env or clean_env(), cwd=cwd or REPO, log_dir=self.log_dir)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment minus settings that would change what a server does."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TOLLHOUSE_", "LITELLM_", "BARE_PROXY_"))
        and k not in ("DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV", "PYTHONPATH")
    }
    env.update(extra)
    return env


def request_body(stream: str | None) -> bytes:
    """The body the wrk scripts send (kept identical to bench/wrk/*.lua): a stream (`stream`
    "usage" or "plain") asks for the usage chunk with "usage" only."""
    body = (
        '{"model":"' + MODEL + '","messages":[{"role":"user","content":'
        '"Say hello in five words."}],"max_tokens":16'
    )
    if stream:
        body += ',"stream": true'
    if stream == "usage":
        body += ',"stream_options":{"include_usage":true}'
    return (body + "}").encode()


def wait_or_fail(proc: Proc, url: str, timeout: float) -> None:
    ok, why = benchkit.wait_ready(proc, url, timeout)
    if not ok:
        raise TargetFailed(f"{proc.name} did not become ready: {why}", proc.tail())


def ensure_port_free(port: int) -> None:
    if benchkit.port_in_use(port):
        raise TargetFailed(f"port {port} is already in use by another process; stop it first")


# --- targets -----------------------------------------------------------------------------------


def setup_upstream(h: Harness, target: str) -> Running:
    assert h.upstream is not None
    return Running(url=f"http://{HOST}:{UPSTREAM_PORT}", pgid=h.upstream.pgid)


def setup_bare(h: Harness, target: str) -> Running:
    port = BARE_GRANIAN_PORT if target == "bare-granian" else BARE_PORT
    ensure_port_free(port)
    argv = [
        str(h.python),
        str(BENCH / "bare_proxy.py"),
        "--host",
        HOST,
        "--port",
        str(port),
        "--upstream",
        f"http://{HOST}:{UPSTREAM_PORT}",
        "--server",
        "granian" if target == "bare-granian" else "uvicorn",
    ]
    proc = h.start(target, argv)
    wait_or_fail(proc, f"http://{HOST}:{port}/health", 30)
    return Running(
        url=f"http://{HOST}:{port}",
        pgid=proc.pgid,
        proc=proc,
        key="sk-bare-proxy-passes-this-through",
    )


def setup_litellm(h: Harness, target: str) -> Running:
    exe = LITELLM_VENV / "bin" / "litellm"
    if not exe.exists():
        raise TargetFailed(f"LiteLLM is not installed: run bash {BENCH / 'setup_litellm.sh'}")
    ensure_port_free(LITELLM_PORT)
    env = clean_env(
        LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR", LITELLM_TELEMETRY="False"
    )
    argv = [
        str(exe),
        "--config",
        str(BENCH / "litellm_config.yaml"),
        "--host",
        HOST,
        "--port",
        str(LITELLM_PORT),
        "--num_workers",
        "1",
    ]
    proc = h.start(target, argv, env=env)
    # Its cold import takes about 6 s on this kind of machine; allow much more.
    wait_or_fail(proc, f"http://{HOST}:{LITELLM_PORT}/health/liveliness", 180)
    return Running(
        url=f"http://{HOST}:{LITELLM_PORT}", pgid=proc.pgid, proc=proc, key=LITELLM_MASTER_KEY
    )


def tollhouse_command(python: Path) -> tuple[list[str], dict[str, str]]:
    """How to run the tollhouse CLI: the venv's `tollhouse` script when installed, else
    `python -m tollhouse.cli.main` (with src/ on PYTHONPATH when the package is not installed)."""
    script = python.parent / "tollhouse"
    if script.exists():
        return [str(script)], {}
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('tollhouse.cli.main') else 1)"
    for extra in ({}, {"PYTHONPATH": str(REPO / "src")}):
        try:
            found = (
                subprocess.run(
                    [str(python), "-c", probe],
                    env=clean_env(**extra),
                    capture_output=True,
                    timeout=60,
                ).returncode
                == 0
            )
        except (OSError, subprocess.TimeoutExpired):
            found = False
        if found:
            return [str(python), "-m", "tollhouse.cli.main"], extra
    raise TargetFailed(
        "the tollhouse CLI was not found (neither the venv's `tollhouse` script "
        "nor the module tollhouse.cli.main): has the gateway landed?"
    )


def run_cli(cli: list[str], args: list[str], env: dict[str, str], cwd: Path) -> Any:
    """Run one `tollhouse ... --json` command and return the JSON it printed."""
    cmd = cli + args
    try:
        res = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        raise TargetFailed(f"`tollhouse {' '.join(args)}` timed out") from None
    if res.returncode != 0:
        raise TargetFailed(
            f"`tollhouse {' '.join(args)}` exited {res.returncode}",
            (res.stderr + res.stdout)[-3000:],
        )
    if "--json" not in args:
        return None
    text = res.stdout.strip()
    for candidate in [text] + text.splitlines()[::-1]:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise TargetFailed(f"`tollhouse {' '.join(args)}` printed no JSON", res.stdout[-2000:])


def _require(obj: Any, key: str, what: str) -> str:
    if not isinstance(obj, dict) or not isinstance(obj.get(key), str):
        raise TargetFailed(f"{what}: expected a JSON object with {key!r}", json.dumps(obj)[:1000])
    return str(obj[key])


def redis_flushdb(url: str) -> None:
    """FLUSHDB on the database of a redis:// URL (plain RESP over a socket, no client needed)."""
    parts = urlsplit(url)
    db = (parts.path or "/0").lstrip("/") or "0"
    with socket.create_connection((parts.hostname or HOST, parts.port or 6379), timeout=5) as sock:
        cmds = []
        if parts.password:
            cmds.append(["AUTH", parts.password])
        cmds += [["SELECT", db], ["FLUSHDB"]]
        for cmd in cmds:
            payload = f"*{len(cmd)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in cmd)
            sock.sendall(payload.encode())
            reply = sock.recv(4096)
            if not reply.startswith(b"+"):
                raise OSError(f"redis {cmd[0]} answered {reply[:200]!r}")


def setup_tollhouse(h: Harness, target: str) -> Running:
    ensure_port_free(TOLLHOUSE_PORT)
    cli, cli_env = tollhouse_command(h.python)
    tmp = Path(tempfile.mkdtemp(prefix=f"{target}-"))
    running = Running(url=f"http://{HOST}:{TOLLHOUSE_PORT}", pgid=0)
    running.cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    try:
        catalog = tmp / "catalog.yaml"
        sessions = target.endswith("-session")
        catalog.write_text(CATALOG_YAML + (SESSION_YAML if sessions else ""))
        env = clean_env(
            **cli_env, TOLLHOUSE_CATALOG=str(catalog), TOLLHOUSE_KEY_SECRET="bench-secret"
        )
        if target in PG_PROCESSES:
            args = h.args
            pg = ["-h", args.pg_host, "-p", str(args.pg_port), "-U", args.pg_user]
            dbname = f"tollhouse_bench_{os.getpid()}_{int(time.time())}"
            for tool in ("createdb", "dropdb"):
                if shutil.which(tool) is None:
                    raise TargetFailed(f"{tool} not found (apt-get install -y postgresql-client)")
            res = subprocess.run(
                ["createdb", *pg, dbname], capture_output=True, text=True, timeout=60
            )
            if res.returncode != 0:
                raise TargetFailed(
                    f"createdb {dbname} failed (is PostgreSQL up on "
                    f"{args.pg_host}:{args.pg_port}?)",
                    res.stderr,
                )
            running.cleanups.insert(0, lambda: _dropdb(pg, dbname))
            try:
                redis_flushdb(args.redis_url)
            except OSError as exc:
                raise TargetFailed(f"Redis at {args.redis_url} is not usable: {exc}") from None
            running.cleanups.insert(0, lambda: _try(lambda: redis_flushdb(args.redis_url)))
            env["TOLLHOUSE_DATABASE_URL"] = (
                f"postgresql+asyncpg://{args.pg_user}@{args.pg_host}:{args.pg_port}/{dbname}"
            )
            env["TOLLHOUSE_REDIS_URL"] = args.redis_url
            running.info["database"] = f"postgresql {dbname} (dropped afterwards)"
            running.info["redis"] = args.redis_url
        else:
            env["TOLLHOUSE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp / 'th.db'}"
            running.info["database"] = "sqlite (temporary file)"
        running.info["catalog"] = catalog.read_text()
        run_cli(cli, ["catalog", "validate", str(catalog), "--json"], env, tmp)
        run_cli(cli, ["db", "upgrade"], env, tmp)
        customer = run_cli(
            cli,
            ["customers", "create", "--name", "bench", "--plan", BENCH_PLAN, "--json"],
            env,
            tmp,
        )
        customer_id = _require(customer, "id", "customers create")
        issued = run_cli(
            cli,
            ["keys", "create", "--customer", customer_id, "--name", "bench", "--json"],
            env,
            tmp,
        )
        running.key = _require(issued, "key", "keys create")
        grant = run_cli(cli, ["credits", "grant", customer_id, "1000000", "--json"], env, tmp)
        running.info.update(customer_id=customer_id, key_id=issued.get("id"), grant=grant)
        if sessions:
            started = run_cli(
                cli, ["sessions", "start", customer_id, "bench-session", "--json"], env, tmp
            )
            running.info["session_id"] = _require(started, "id", "sessions start")
        serve = ["serve", "--host", HOST, "--port", str(TOLLHOUSE_PORT)]
        if target in PG_PROCESSES:
            serve += ["--workers", str(PG_PROCESSES[target])]
        proc = h.start(target, cli + serve, env=env, cwd=tmp)
        running.proc, running.pgid = proc, proc.pgid
        wait_or_fail(proc, f"http://{HOST}:{TOLLHOUSE_PORT}/healthz", 90)

        def balance() -> None:
            running.info["balance_after"] = run_cli(
                cli, ["credits", "balance", customer_id, "--json"], env, tmp
            )

        running.info["_after_stop"] = balance
        return running
    except BaseException as exc:
        if isinstance(exc, TargetFailed):
            exc.info = running.info
        _run_cleanups(running)
        raise


def _dropdb(pg: list[str], dbname: str) -> None:
    subprocess.run(
        ["dropdb", *pg, "--if-exists", "--force", dbname],
        capture_output=True,
        timeout=60,
        check=False,
    )


def _try(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as exc:
        print(f"  (cleanup: {exc})", file=sys.stderr)


def _run_cleanups(running: Running) -> None:
    for cleanup in running.cleanups:
        _try(cleanup)
    running.cleanups.clear()


SETUP: dict[str, Callable[[Harness, str], Running]] = {
    "upstream": setup_upstream,
    "bare": setup_bare,
    "bare-granian": setup_bare,
    "litellm": setup_litellm,
    "tollhouse-sqlite": setup_tollhouse,
    "tollhouse-sqlite-session": setup_tollhouse,
    "tollhouse-pg": setup_tollhouse,
    "tollhouse-pg-2": setup_tollhouse,
}


# --- measuring ---------------------------------------------------------------------------------


def preflight(running: Running, stream: str | None) -> dict[str, Any]:
    """One real request; a target that does not answer 200 with a completion is not measured."""
    headers = {"Content-Type": "application/json"}
    if running.key:
        headers["Authorization"] = f"Bearer {running.key}"
    try:
        status, body = benchkit.http_request(
            running.url + CHAT_PATH,
            method="POST",
            body=request_body(stream),
            headers=headers,
            timeout=30,
        )
    except OSError as exc:
        raise TargetFailed(f"preflight request failed: {exc}") from None
    text = body.decode(errors="replace")
    if status != 200:
        raise TargetFailed(f"preflight answered HTTP {status}", text[:2000])
    if stream:
        if "[DONE]" not in text:
            raise TargetFailed("preflight stream has no `data: [DONE]`", text[:2000])
        return {"status": status, "bytes": len(body)}
    try:
        doc = json.loads(body)
    except ValueError:
        raise TargetFailed("preflight answer is not JSON", text[:2000]) from None
    if not isinstance(doc, dict) or "choices" not in doc:
        raise TargetFailed("preflight answer is not a chat completion", text[:2000])
    return {"status": status, "usage": doc.get("usage")}


def measure(h: Harness, target: str) -> dict[str, Any]:
    args = h.args
    script = BENCH / "wrk" / ("chat_stream.lua" if args.stream else "chat.lua")
    record: dict[str, Any] = {"target": target, "ok": False}
    print(f"\n== {target}", flush=True)
    running: Running | None = None
    try:
        running = SETUP[target](h, target)
        record["url"] = running.url
        record["preflight"] = preflight(running, args.stream)
        env = clean_env(
            BENCH_MODEL=MODEL,
            BENCH_PATH=CHAT_PATH,
            BENCH_KEY=running.key or "",
            BENCH_STREAM=args.stream or "",
        )
        upstream_pgid = None if target == "upstream" else (h.upstream.pgid if h.upstream else None)
        kwargs: dict[str, Any] = dict(
            connections=args.connections,
            threads=args.threads,
            env=env,
            server_pgid=running.pgid,
            upstream_pgid=upstream_pgid,
            stores=target in PG_PROCESSES,  # PostgreSQL and Redis work for this target
        )
        sent = 1  # the preflight
        if args.warmup > 0:
            print(f"   warm-up {args.warmup:g} s", flush=True)
            sent += benchkit.run_wrk(running.url, script, duration=args.warmup, **kwargs).requests
        runs: list[WrkResult] = []
        for i in range(args.repeat):
            run = benchkit.run_wrk(running.url, script, duration=args.duration, **kwargs)
            runs.append(run)
            sent += run.requests
            print(
                f"   run {i + 1}: {run.requests_per_s:,.0f} req/s  p50 {run.p50_ms:.2f} ms  "
                f"p99 {run.p99_ms:.2f} ms  errors {run.errors}  "
                f"server CPU {fmt(run.server_cpu_ms_per_request, 3)} ms/req  "
                + (
                    f"PostgreSQL + Redis CPU {fmt(run.store_cpu_ms_per_request, 3)} ms/req  "
                    if run.store_cpu_s
                    else ""
                )
                + f"foreign CPU {run.foreign_cpu_percent:.0f}%",
                flush=True,
            )
        chosen = sorted(runs, key=lambda r: r.requests_per_s)[len(runs) // 2]  # the median run
        record.update(chosen.as_dict())
        record["runs"] = [r.as_dict() for r in runs]
        record["requests_per_s_all"] = [r.requests_per_s for r in runs]
        record["requests_sent_total"] = sent
        record["ok"] = chosen.errors == 0
        if record["ok"] and args.rate > 0:
            record["paced"] = paced(h, running, chosen.requests_per_s, args.rate, PACED_POOL)
            record["requests_sent_total"] += record["paced"].get("sent", 0)
        if record["ok"] and args.one_connection_rate > 0:
            record["one_connection"] = paced(
                h, running, chosen.requests_per_s, args.one_connection_rate, 1
            )
            record["requests_sent_total"] += record["one_connection"].get("sent", 0)
        if chosen.errors:
            record["error"] = (
                f"{chosen.non_2xx} non-2xx answers, socket errors {chosen.socket_errors}"
            )
            print(f"   !! {record['error']}", flush=True)
    except TargetFailed as exc:
        record["error"] = str(exc)
        record["output"] = exc.output
        record["info"] = exc.info
        print(f"   FAILED: {exc}", flush=True)
        if exc.output:
            print("   " + exc.output.replace("\n", "\n   "), flush=True)
    except RuntimeError as exc:  # wrk or the paced run failed
        record["ok"] = False
        record["error"] = str(exc)
        print(f"   FAILED: {exc}", flush=True)
    finally:
        if running is not None:
            if running.proc is not None:
                h.stop(running.proc)
                record["log"] = str(running.proc.stderr_path)
            after = running.info.pop("_after_stop", None)
            if after is not None:
                _try(after)
            record["info"] = running.info
            _run_cleanups(running)
            _charged(record)
    return record


def paced(
    h: Harness, running: Running, saturated_rps: float, rate: float, connections: int
) -> dict[str, Any]:
    """Latency at the fixed `rate` over at most `connections` connections (bench/paced.py),
    or why it was not measured."""
    args = h.args
    if saturated_rps < 2 * rate:
        return {"skipped": f"saturates at {saturated_rps:,.0f} req/s, under 2x the rate"}
    body = h.log_dir / "paced-body.json"
    body.write_bytes(request_body(args.stream))
    argv = [
        str(args.python),
        str(BENCH / "paced.py"),
        "--url",
        running.url + CHAT_PATH,
        "--rate",
        str(rate),
        "--duration",
        str(args.duration),
        "--body-file",
        str(body),
        "--key",
        running.key or "",
        "--connections",
        str(connections),
    ]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=args.duration * 3 + 60)
    if res.returncode != 0:
        raise RuntimeError(f"paced load failed: {res.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(res.stdout)
    print(
        f"   at {rate:g} req/s on {connections} connection(s): p50 {fmt(result.get('p50_ms'))} ms"
        f"  p99 {fmt(result.get('p99_ms'))} ms  errors {result['errors']}  "
        f"late starts {result['late_starts']}",
        flush=True,
    )
    return result


PACED_POOL = 64
"""Connections of the fixed-rate run (bench/paced.py's default)."""

GRANT_MICROS = 1_000_000 * 1_000_000  # the $1,000,000 granted to the bench customer


def _charged(record: dict[str, Any]) -> None:
    """For tollhouse: how much the wallet was charged, per request sent (a sanity check that
    the gateway billed; 12 input + 8 output tokens at $0.15/$0.60 per 1M = 6.6 micros)."""
    balance = record.get("info", {}).get("balance_after")
    sent = record.get("requests_sent_total")
    if not isinstance(balance, dict) or not sent:
        return
    try:
        left = int(balance["available_micros"]) + int(balance.get("held_micros", 0))
    except (KeyError, TypeError, ValueError):
        return
    record["charged_micros"] = GRANT_MICROS - left
    record["charged_micros_per_request"] = round((GRANT_MICROS - left) / sent, 3)


# --- report ------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def comparisons(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    bare, litellm = records.get("bare"), records.get("litellm")
    upstream_one = records.get("upstream", {}).get("one_connection", {})
    out = []
    for name in ("tollhouse-sqlite", "tollhouse-sqlite-session", *PG_PROCESSES):
        th = records.get(name)
        if not th or not th.get("ok"):
            continue
        row: dict[str, Any] = {"target": name}
        plain = records.get("tollhouse-sqlite")
        if name.endswith("-session") and plain and plain.get("ok"):
            row["vs_without_sessions_pct"] = round(
                th["requests_per_s"] / plain["requests_per_s"] * 100, 1
            )
        if bare and bare.get("ok"):
            row["throughput_vs_bare_pct"] = round(
                th["requests_per_s"] / bare["requests_per_s"] * 100, 1
            )
            row["p50_delta_vs_bare_ms"] = round(th["p50_ms"] - bare["p50_ms"], 3)
            row["meets_throughput_goal"] = (
                row["throughput_vs_bare_pct"] >= GOAL_THROUGHPUT_VS_BARE_PCT
            )
            row["meets_p50_goal"] = row["p50_delta_vs_bare_ms"] <= GOAL_P50_DELTA_MS
            th_paced, bare_paced = th.get("paced", {}), bare.get("paced", {})
            if "p50_ms" in th_paced and "p50_ms" in bare_paced:
                row["paced_p50_delta_vs_bare_ms"] = round(
                    th_paced["p50_ms"] - bare_paced["p50_ms"], 3
                )
                row["meets_paced_p50_goal"] = row["paced_p50_delta_vs_bare_ms"] <= GOAL_P50_DELTA_MS
        th_one = th.get("one_connection", {})
        if "p50_ms" in th_one and "p50_ms" in upstream_one:
            for q in ("p50_ms", "p99_ms"):
                row[f"one_connection_added_{q}"] = round(th_one[q] - upstream_one[q], 3)
        if litellm and litellm.get("ok"):
            row["vs_litellm_x"] = round(th["requests_per_s"] / litellm["requests_per_s"], 1)
            row["meets_litellm_goal"] = row["vs_litellm_x"] >= GOAL_VS_LITELLM_X
            if litellm.get("server_peak_rss_mib"):
                row["rss_vs_litellm_pct"] = round(
                    th["server_peak_rss_mib"] / litellm["server_peak_rss_mib"] * 100, 1
                )
        out.append(row)
    return out


def _note(r: dict[str, Any]) -> str:
    notes = [r["error"]] if r.get("error") else []
    if r.get("store_cpu_s"):
        notes.append(f"PostgreSQL + Redis {fmt(r['store_cpu_ms_per_request'], 3)} CPU ms/req")
    if "charged_micros_per_request" in r:
        notes.append(f"charged {r['charged_micros_per_request']:g} micros/request")
    return "; ".join(notes)


def print_report(
    machine: dict[str, Any],
    records: list[dict[str, Any]],
    comps: list[dict[str, Any]],
    args: argparse.Namespace,
    path: Path,
) -> None:
    sp = machine.get("server_python", {})
    print("\n" + "=" * 100)
    print(
        f"machine: {machine['nproc']} cores ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB, {machine['os']}, kernel {machine['kernel']}, "
        f"load {machine['load_average']}"
    )
    print(
        f"python {sp.get('python')} (servers), uvicorn {sp.get('uvicorn')}, starlette "
        f"{sp.get('starlette')}, aiohttp {sp.get('aiohttp')}, uvloop {sp.get('uvloop')}, "
        f"litellm {machine.get('litellm_venv', {}).get('litellm', '-')}, {machine['wrk']}"
    )
    print(
        f"load: wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency, "
        f"{f'streaming ({args.stream})' if args.stream else 'non-streaming'} chat completion, "
        f"warm-up {args.warmup:g} s, median of {args.repeat} run(s)"
    )
    head = (
        f"{'target':<18}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'srv CPU ms/req':>16}{'peak RSS MiB':>14}{'foreign CPU':>13}  note"
    )
    print("-" * 100 + "\n" + head + "\n" + "-" * 100)
    noisy = False
    for r in records:
        if "requests_per_s" in r:
            foreign = r["foreign_cpu_percent"]
            noisy = noisy or foreign > 15
            print(
                f"{r['target']:<18}{r['requests_per_s']:>10,.0f}{r['p50_ms']:>9.2f}"
                f"{r['p99_ms']:>9.2f}{r['non_2xx'] + sum(r['socket_errors'].values()):>8}"
                f"{fmt(r['server_cpu_ms_per_request'], 3):>16}"
                f"{fmt(r['server_peak_rss_mib'], 1):>14}{foreign:>12.0f}%  "
                f"{_note(r)}"
            )
        else:
            print(
                f"{r['target']:<18}{'-':>10}{'-':>9}{'-':>9}{'-':>8}{'-':>16}{'-':>14}{'-':>13}  "
                f"FAILED: {r.get('error', '')}"
            )
    print("-" * 100)
    for field_name, rate, pool in (
        ("paced", args.rate, f"{PACED_POOL} connections"),
        ("one_connection", args.one_connection_rate, "one connection"),
    ):
        if not any(field_name in r for r in records):
            continue
        print(
            f"fixed rate {rate:g} req/s for {args.duration:g} s on {pool} "
            "(bench/paced.py, open loop, latency from each request's due time):"
        )
        for r in records:
            pr = r.get(field_name)
            if pr is None:
                continue
            if "skipped" in pr:
                print(f"{r['target']:<18}  not measured: {pr['skipped']}")
                continue
            print(
                f"{r['target']:<18}{pr['achieved_rate']:>10,.0f}{fmt(pr.get('p50_ms')):>9}"
                f"{fmt(pr.get('p99_ms')):>9}{pr['errors']:>8}  "
                f"p90 {fmt(pr.get('p90_ms'))} ms, {pr['late_starts']} late starts"
            )
        print("-" * 100)
    for c in comps:
        parts = [c["target"] + ":"]
        if "vs_without_sessions_pct" in c:
            parts.append(
                f"{c['vs_without_sessions_pct']:.1f}% of tollhouse-sqlite's throughput "
                "(sessions required vs not; goal >= 95%),"
            )
        if "throughput_vs_bare_pct" in c:
            parts.append(
                f"{c['throughput_vs_bare_pct']:.1f}% of bare throughput "
                f"(goal >= {GOAL_THROUGHPUT_VS_BARE_PCT:.0f}%: "
                f"{'met' if c['meets_throughput_goal'] else 'NOT met'}),"
            )
            parts.append(
                f"p50 {c['p50_delta_vs_bare_ms']:+.2f} ms vs bare under wrk "
                f"(goal <= +{GOAL_P50_DELTA_MS:g} ms: "
                f"{'met' if c['meets_p50_goal'] else 'NOT met'}),"
            )
        if "paced_p50_delta_vs_bare_ms" in c:
            parts.append(
                f"p50 {c['paced_p50_delta_vs_bare_ms']:+.2f} ms vs bare at {args.rate:g} req/s "
                f"(goal <= +{GOAL_P50_DELTA_MS:g} ms: "
                f"{'met' if c['meets_paced_p50_goal'] else 'NOT met'}),"
            )
        if "one_connection_added_p50_ms" in c:
            parts.append(
                f"adds {c['one_connection_added_p50_ms']:+.2f} ms at p50 and "
                f"{c['one_connection_added_p99_ms']:+.2f} ms at p99 to the upstream called "
                f"directly (one connection, {args.one_connection_rate:g} req/s),"
            )
        if "rss_vs_litellm_pct" in c:
            parts.append(f"peak RSS {c['rss_vs_litellm_pct']:.0f}% of LiteLLM's,")
        if "vs_litellm_x" in c:
            parts.append(
                f"{c['vs_litellm_x']:.1f}x LiteLLM (goal >= {GOAL_VS_LITELLM_X:.0f}x: "
                f"{'met' if c['meets_litellm_goal'] else 'NOT met'})"
            )
        print(" ".join(parts))
    by = {r["target"]: r for r in records}
    if by.get("bare", {}).get("ok") and by.get("litellm", {}).get("ok"):
        print(
            f"bare proxy = {by['bare']['requests_per_s'] / by['litellm']['requests_per_s']:.1f}x "
            "LiteLLM"
        )
    if noisy:
        print(
            "WARNING: other processes used more than 15% of a core during some runs "
            "(foreign CPU column): those figures are low; re-run on a quiet machine."
        )
    print(f"results: {path}")


# --- main --------------------------------------------------------------------------------------


def default_python() -> Path:
    venv = REPO / ".venv" / "bin" / "python"
    return venv if venv.exists() else Path(sys.executable)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    p.add_argument("--duration", type=float, default=15, help="seconds per measured run (15)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    p.add_argument("--warmup", type=float, default=2, help="warm-up seconds before measuring (2)")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measured runs per target; the median run by req/s is reported (1)",
    )
    p.add_argument(
        "--targets",
        default=DEFAULT_TARGETS,
        help=f"comma-separated, from {','.join(ALL_TARGETS)} ({DEFAULT_TARGETS})",
    )
    p.add_argument(
        "--stream",
        nargs="?",
        const="usage",
        choices=("usage", "plain"),
        help="streaming chat completions; `usage` (the default) asks for the usage chunk "
        "(stream_options.include_usage), `plain` does not (tollhouse then leaves it out)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=500,
        help="requests/s of the fixed-rate latency run after wrk; 0 skips it (500)",
    )
    p.add_argument(
        "--python",
        type=Path,
        default=default_python(),
        help="interpreter for the upstream, the bare proxy and tollhouse "
        "(default: the project's .venv)",
    )
    p.add_argument(
        "--one-connection-rate",
        type=float,
        default=100,
        help="requests/s of the one-connection latency run (every target, the upstream too: "
        "tollhouse's p50/p99 minus the upstream's is the latency it adds); 0 skips it (100)",
    )
    p.add_argument("--pg-host", default=HOST)
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres")
    p.add_argument(
        "--redis-url",
        default=f"redis://{HOST}:6379/14",
        help="Redis database for tollhouse-pg; FLUSHED before and after (db 14)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON file to write (default bench/results/<timestamp>.json)",
    )
    args = p.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in ALL_TARGETS]
    if unknown:
        p.error(f"unknown targets {unknown}; choose from {', '.join(ALL_TARGETS)}")
    if min(args.repeat, args.connections, args.threads) < 1 or args.duration <= 0:
        p.error("--repeat, --duration, --connections and --threads must be positive")
    if args.rate < 0 or args.one_connection_rate < 0:
        p.error("--rate and --one-connection-rate must be 0 (skip) or positive")
    if urlsplit(args.redis_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        p.error("--redis-url must point at this machine (127.0.0.1)")
    if args.pg_host not in ("127.0.0.1", "localhost", "::1"):
        p.error("--pg-host must be this machine (127.0.0.1)")
    args.target_list = targets
    return args


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(benchkit.WRK_INSTALL_HINT, file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    results_dir = BENCH / "results"
    out_path = args.output or results_dir / f"{stamp}.json"
    h = Harness(args=args, python=args.python, log_dir=results_dir / f"{stamp}-logs")
    signal.signal(signal.SIGTERM, _interrupt)
    records: list[dict[str, Any]] = []
    machine = benchkit.machine_info(
        args.python,
        {"litellm_venv": LITELLM_VENV / "bin" / "python"}
        if (LITELLM_VENV / "bin" / "python").exists()
        else None,
    )
    started = time.time()
    try:
        if benchkit.port_in_use(UPSTREAM_PORT):
            print(
                f"port {UPSTREAM_PORT} is in use: stop whatever listens there first",
                file=sys.stderr,
            )
            return 2
        h.upstream = h.start(
            "fake-upstream",
            [
                str(args.python),
                str(BENCH / "fake_upstream.py"),
                "--host",
                HOST,
                "--port",
                str(UPSTREAM_PORT),
            ],
        )
        try:
            wait_or_fail(h.upstream, f"http://{HOST}:{UPSTREAM_PORT}/health", 30)
        except TargetFailed as exc:
            print(f"the fake upstream did not start: {exc}\n{exc.output}", file=sys.stderr)
            return 1
        for target in args.target_list:
            records.append(measure(h, target))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping servers", file=sys.stderr)
    finally:
        h.stop_all()
    by_target = {r["target"]: r for r in records}
    comps = comparisons(by_target)
    document = {
        "timestamp": stamp,
        "elapsed_s": round(time.time() - started, 1),
        "machine": machine,
        "settings": {
            "duration_s": args.duration,
            "connections": args.connections,
            "threads": args.threads,
            "warmup_s": args.warmup,
            "repeat": args.repeat,
            "rate": args.rate,
            "one_connection_rate": args.one_connection_rate,
            "stream": args.stream,
            "targets": args.target_list,
            "body": request_body(args.stream).decode(),
        },
        "goals": {
            "throughput_vs_bare_pct_min": GOAL_THROUGHPUT_VS_BARE_PCT,
            "vs_litellm_x_min": GOAL_VS_LITELLM_X,
            "p50_delta_vs_bare_ms_max": GOAL_P50_DELTA_MS,
        },
        "results": records,
        "comparisons": comps,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print_report(machine, records, comps, args, out_path)
    return 0 if records and all(r.get("ok") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
