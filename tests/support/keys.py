"""Key helpers shared by the keys tests."""

from __future__ import annotations

from tollhouse.keys import ApiKey, Principal


def principal_of(key: ApiKey, plan: str = "pro") -> Principal:
    """The principal a request made with `key` carries, as `KeyAuthenticator` builds it
    (`plan` is the customer's; "" for an operator key)."""
    return Principal(
        key_id=key.id,
        customer_id=key.customer_id,
        scopes=frozenset(key.scopes),
        allowed_models=None if key.allowed_models is None else frozenset(key.allowed_models),
        rate_limit_rpm=key.rate_limit_rpm,
        plan=plan if key.customer_id else "",
    )
