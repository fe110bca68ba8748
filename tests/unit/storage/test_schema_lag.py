"""`schema_lag`: whether a database's `alembic_version` rows mean "every migration applied"."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from tollhouse.storage.migrate import alembic_config, schema_lag


def heads() -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config("")).get_heads())


def revisions() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(alembic_config("")).walk_revisions()}


class TestSchemaLag:
    def test_a_database_at_every_head_is_current(self) -> None:
        assert schema_lag(heads()) is None

    def test_a_branch_behind_is_named(self) -> None:
        behind = (heads() - {"ledger_0002"}) | {"ledger_0001"}

        assert schema_lag(behind) == "lacks ledger_0002 (run `tollhouse db upgrade`)"

    def test_an_empty_database_lacks_everything(self) -> None:
        lag = schema_lag(frozenset())

        assert lag is not None
        assert all(revision in lag for revision in revisions())

    def test_a_revision_of_a_newer_build_is_reported(self) -> None:
        lag = schema_lag(heads() | {"ledger_0099"})

        assert lag is not None and "unknown to this build" in lag
