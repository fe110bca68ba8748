"""`Principal`: an authenticated API key, as the rest of tollhouse sees it (the subject)."""

from __future__ import annotations

from dataclasses import dataclass

from tollhouse.keys.errors import InsufficientScope

IMPLIED_BY_ADMIN = frozenset({"read", "write", "admin"})


@dataclass(frozen=True)
class Principal:
    """Who is calling: one valid, unrevoked, unexpired key and what it may do."""

    key_id: str
    customer_id: str | None
    """The paying customer; None for an operator key."""
    scopes: frozenset[str]
    """Subset of `read`, `write`, `admin`; `admin` implies `read` and `write`."""
    allowed_models: frozenset[str] | None
    """Model ids this key may call; None = all that the plan allows."""
    rate_limit_rpm: int | None
    """Per-key requests per minute; None = only the plan's limits apply."""
    plan: str
    """The customer's plan name at lookup time; "" for an operator key."""
    max_in_flight: int | None = None
    """Most gateway requests this key may have under way at once; None = only the plan's cap."""

    @property
    def is_operator(self) -> bool:
        """True for operator keys (no customer)."""
        return self.customer_id is None

    def has_scope(self, scope: str) -> bool:
        """True when the key carries `scope` (or `admin`, which implies read and write)."""
        return scope in self.scopes or ("admin" in self.scopes and scope in IMPLIED_BY_ADMIN)

    def require(self, scope: str) -> None:
        """Raise unless the key carries `scope`.

        Raises:
            InsufficientScope: 403, with `required_scope` in the problem body.
        """
        if not self.has_scope(scope):
            raise InsufficientScope(f"this API key lacks the {scope!r} scope", required_scope=scope)

    def can_use_model(self, model_id: str) -> bool:
        """True when the key's model allow-list admits `model_id` (the plan is checked
        elsewhere, by the catalog)."""
        return self.allowed_models is None or model_id in self.allowed_models
