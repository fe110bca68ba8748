"""The ledger's group-commit writer (`Ledger`) and its batch machinery."""

from tollhouse.ledger.writer.ledger import DEFAULT_HOLD_TTL_SECONDS, Ledger

__all__ = ["DEFAULT_HOLD_TTL_SECONDS", "Ledger"]
