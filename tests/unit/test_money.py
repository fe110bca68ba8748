"""Money as plain decimal strings: exact both ways, for exports that machines read back."""

from __future__ import annotations

import pytest

from tollhouse.money import decimal_string, to_micros


class TestDecimalString:
    @pytest.mark.parametrize(
        ("micros", "shown"),
        [
            (1_250_000, "1.25"),
            (37_500, "0.0375"),
            (1_234_567_890_123, "1234567.890123"),
            (-37_500, "-0.0375"),
            (-1_000_000, "-1.00"),
            (1, "0.000001"),
            (0, "0.00"),
        ],
    )
    def test_amounts_are_exact_without_separators_or_currency(
        self, micros: int, shown: str
    ) -> None:
        assert decimal_string(micros) == shown
        assert to_micros(shown) == micros
