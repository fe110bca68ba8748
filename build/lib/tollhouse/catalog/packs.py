"""Credit packs: a price that buys credits, plus an optional bonus that may expire.

`$50 buys $55` is a pack of `price_micros=50_000_000`, `credits_micros=50_000_000` and
`bonus_micros=5_000_000`: a payment posts the credits and the bonus as two grants (the bonus
expiring `bonus_expiry_days` after the payment when set), see `tollhouse.payments`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CreditPack:
    """A purchasable amount of credits. Money in micros of the catalog's currency."""

    name: str
    price_micros: int
    """What the customer pays (> 0, a whole number of the currency's minor unit)."""
    credits_micros: int
    """Credits the price buys (> 0), granted without expiry."""
    bonus_micros: int = 0
    """Extra credits given with the pack (0 = none)."""
    bonus_expiry_days: int | None = None
    """The bonus expires this many days after the payment (None = never)."""
    description: str = ""

    @property
    def total_micros(self) -> int:
        """Credits and bonus together: what the wallet gains."""
        return self.credits_micros + self.bonus_micros
