"""The README as a new user runs it: its commands and snippets, verbatim, against real processes.

- "Try it": `tollhouse serve` with the built-in catalog (its upstreams pointed at the local
  test upstream), the README's curl block (customer, $5 grant, key), the CLI's balance
  ($6.00: the free plan's $1.00 included), then the README's Python snippet with the real
  `openai` SDK, whose streaming loop prints text, never `None`.
- "Embed it": the `db upgrade` line with the snippet's URL, then the snippet itself serves a
  ready app over that database.
- The LICENSE file is the licence `pyproject.toml` names.

The README's `.venv/bin/tollhouse` is a shim in the working directory that runs this
interpreter's tollhouse; the address and keys the README elides (`...`) are filled in.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from tests.cli.test_serve import environment, fake_upstream, serving, sqlite_url
from tests.support.upstream import ANSWER, FakeUpstream

import tollhouse

SOURCE_ROOT = Path(__file__).resolve().parents[2]
README = (SOURCE_ROOT / "README.md").read_text()
BUILTIN_CATALOG = Path(tollhouse.__file__).parent / "catalog" / "builtin.yaml"
COMMAND_SECONDS = 60


def section(title: str) -> str:
    """The README's text under `## title`, up to the next `## ` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def install_shim(directory: Path) -> None:
    """`.venv/bin/tollhouse` in `directory`: this interpreter's tollhouse CLI."""
    shim = directory / ".venv" / "bin" / "tollhouse"
    shim.parent.mkdir(parents=True)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tollhouse.cli.main "$@"\n')
    shim.chmod(0o755)


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_SECONDS
    )


def shell(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(["bash", "-euo", "pipefail", "-c", script], cwd, env)


def python(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-c", code], cwd, env)


def builtin_catalog_calling(upstream: FakeUpstream) -> str:
    """The built-in catalog with every upstream's `base_url` pointed at `upstream`."""
    catalog = yaml.safe_load(BUILTIN_CATALOG.read_text())
    for spec in catalog["upstreams"].values():
        spec["base_url"] = upstream.base_url
    return yaml.safe_dump(catalog, sort_keys=False)


async def test_try_it_runs_as_written(tmp_path: Path) -> None:
    """Customer, grant and key with the README's curl block; the balance the README states;
    then its `openai` snippet prints the answer and the streamed text."""
    install_shim(tmp_path)
    env = environment(TOLLHOUSE_DATABASE_URL=sqlite_url(tmp_path / "tollhouse.db"))
    try_it = section("Try it with the `openai` SDK")
    curl_block = code_blocks(try_it, "bash")[0]
    snippet = code_blocks(try_it, "python")[0]
    async with fake_upstream() as upstream:
        (tmp_path / "tollhouse.yaml").write_text(builtin_catalog_calling(upstream))
        with serving(tmp_path, env) as served:
            operator_key = next(line for line in served.stdout if line.startswith("th_live_"))
            created = await asyncio.to_thread(
                shell,
                curl_block.replace("export TH=", "# export TH=") + 'echo; echo "$CUS $KEY"',
                tmp_path,
                {**env, "TH": served.base_url, "OP": operator_key},
            )
            assert created.returncode == 0, created.stderr
            customer_id, key = created.stdout.splitlines()[-1].split()
            balance = await asyncio.to_thread(
                shell, f".venv/bin/tollhouse credits balance {customer_id} --json", tmp_path, env
            )
            ran = await asyncio.to_thread(
                python,
                snippet.replace("http://127.0.0.1:8080/v1", f"{served.base_url}/v1").replace(
                    "th_live_...", key
                ),
                tmp_path,
                env,
            )

    assert "reads $6.00" in " ".join(try_it.split())
    assert '"available_micros": 6000000' in balance.stdout, balance.stdout
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"{ANSWER}\n{ANSWER}\n"
    assert [request.body["model"] for request in upstream.requests] == ["gpt-4o-mini"] * 2


async def test_the_starter_catalog_has_the_models_the_readme_names(tmp_path: Path) -> None:
    """The README tells a user of `tollhouse init` which model to call instead."""
    install_shim(tmp_path)
    init = await asyncio.to_thread(shell, ".venv/bin/tollhouse init", tmp_path, environment())
    assert init.returncode == 0, init.stderr
    models = yaml.safe_load((tmp_path / "tollhouse.yaml").read_text())["models"]
    said = " ".join(section("Try it with the `openai` SDK").split())
    named = re.search(r"The starter catalog's models are (.*?): call `model=\"([\w.-]+)\"`", said)
    assert named is not None
    assert all(f"`{model}`" in named.group(1) for model in models)
    assert named.group(2) in models


async def test_embed_it_runs_as_written(tmp_path: Path) -> None:
    """The `db upgrade` line creates the snippet's database; the snippet's app is then ready
    (migrations current) and serves the control API."""
    install_shim(tmp_path)
    embed = section("Embed it")
    snippet = code_blocks(embed, "python")[0]
    upgrade = code_blocks(embed, "bash")[0]
    env = environment()

    upgraded = await asyncio.to_thread(shell, upgrade, tmp_path, env)
    served = await asyncio.to_thread(
        python,
        snippet
        + "\nfrom starlette.testclient import TestClient\n"
        + "with TestClient(app) as client:\n"
        + "    print(client.get('/ready').json()['checks'])\n",
        tmp_path,
        env,
    )

    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "billing.db").exists()
    assert not (tmp_path / "tollhouse.db").exists()
    assert served.returncode == 0, served.stderr
    assert served.stdout.strip() == "{'database': 'ok', 'migrations': 'ok'}"


def test_the_license_file_is_the_one_pyproject_names() -> None:
    project = tomllib.loads((SOURCE_ROOT / "pyproject.toml").read_text())["project"]
    license_text = (SOURCE_ROOT / "LICENSE").read_text()

    assert project["license"] == {"text": "Apache-2.0"}
    assert license_text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
