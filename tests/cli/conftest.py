"""The CLI fixtures of `test_cli.py` (`cli`, `migrated`), shared with the other CLI tests."""

from tests.cli.test_cli import cli, migrated

__all__ = ["cli", "migrated"]
