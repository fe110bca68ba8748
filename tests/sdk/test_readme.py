"""The README's "Python SDK" snippet, verbatim, against `tollhouse serve` with the built-in
catalog (the free plan includes $1.00), with `TOLLHOUSE_URL` and `TOLLHOUSE_API_KEY` set as the
README says: it prints each ledger entry, page after page, and the balance it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cli.test_readme import code_blocks, section
from tests.cli.test_serve import environment, serving, sqlite_url

from tollhouse.keys import generate_key

COMMAND_SECONDS = 60


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    (snippet,) = code_blocks(section("Python SDK"), "python")
    operator_key = generate_key()
    env = environment(
        TOLLHOUSE_DATABASE_URL=sqlite_url(tmp_path / "th.db"),
        TOLLHOUSE_BOOTSTRAP_KEY=operator_key,
    )

    with serving(tmp_path, env) as served:
        ran = subprocess.run(
            [sys.executable, "-c", snippet],
            env={**env, "TOLLHOUSE_URL": served.base_url, "TOLLHOUSE_API_KEY": operator_key},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
            check=False,
        )

    assert ran.returncode == 0, ran.stderr
    *entries, balance = ran.stdout.splitlines()
    assert balance == "5991900"
    assert "grant 5000000" in entries and "grant 1000000" in entries
    assert "capture -8100" in entries, entries
