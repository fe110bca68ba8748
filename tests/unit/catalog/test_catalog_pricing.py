from __future__ import annotations

import random
from decimal import ROUND_CEILING, Decimal

import pytest

from tollhouse.catalog import Price, Usage


class TestPriceFromDollars:
    def test_rates_become_micros_in_the_yaml_unit(self) -> None:
        price = Price.from_dollars(
            per_request="0.001",
            input_per_1m_tokens="0.15",
            output_per_1m_tokens="0.60",
            per_image="0.04",
            per_audio_second="0.0001",
            per_1m_characters="15",
        )
        assert price.per_request_micros == 1_000
        assert price.input_per_1m_tokens == Decimal(150_000)
        assert price.output_per_1m_tokens == Decimal(600_000)
        assert price.per_image == Decimal(40_000)
        assert price.per_audio_second == Decimal(100)
        assert price.per_1m_characters == Decimal(15_000_000)

    def test_unpriced_components_are_none(self) -> None:
        price = Price.from_dollars(per_image="0.04")
        assert price.input_per_1m_tokens is None
        assert price.per_request_micros == 0
        assert price.cost(Usage(input_tokens=10**6, images=1)) == 40_000

    def test_sub_micro_rates_stay_exact(self) -> None:
        price = Price.from_dollars(per_audio_second="0.0000111")
        assert price.per_audio_second == Decimal("11.1")

    def test_negative_rate_raises(self) -> None:
        with pytest.raises(ValueError):
            Price.from_dollars(per_image="-0.01")

    def test_per_request_finer_than_a_micro_raises(self) -> None:
        with pytest.raises(ValueError):
            Price.from_dollars(per_request="0.0000001")

    def test_as_dollars_round_trips_non_zero_components(self) -> None:
        price = Price.from_dollars(input_per_1m_tokens="0.15", output_per_1m_tokens="0.60")
        assert price.as_dollars() == {"input_per_1m_tokens": "0.15", "output_per_1m_tokens": "0.6"}
        assert Price().as_dollars() == {}
        assert Price().is_free
        assert Price.from_dollars(per_image="0").is_free
        assert Price.from_dollars(per_image="0").as_dollars() == {"per_image": "0"}


class TestPriceCost:
    def test_tokens_sum_exactly_then_round_up_once(self) -> None:
        price = Price.from_dollars(input_per_1m_tokens="0.15", output_per_1m_tokens="0.60")
        usage = Usage(input_tokens=1234, output_tokens=56)
        # 1234 * 0.15 + 56 * 0.60 = 185.1 + 33.6 = 218.7 micros -> 219
        assert price.exact_cost(usage) == Decimal("218.7")
        assert price.cost(usage) == 219

    def test_rounding_once_is_not_rounding_each_part(self) -> None:
        price = Price.from_dollars(input_per_1m_tokens="0.15", output_per_1m_tokens="0.15")
        usage = Usage(input_tokens=1, output_tokens=1)
        # parts 0.15 + 0.15 = 0.3 -> 1 micro (rounding each part up would give 2)
        assert price.cost(usage) == 1

    def test_exact_whole_micros_are_not_rounded_up(self) -> None:
        price = Price.from_dollars(input_per_1m_tokens="2.50", output_per_1m_tokens="10.00")
        assert price.cost(Usage(input_tokens=1_000_000, output_tokens=100_000)) == 3_500_000

    def test_per_image(self) -> None:
        price = Price.from_dollars(per_image="0.0027")
        assert price.cost(Usage(images=3)) == 8_100

    def test_per_request_counts_requests(self) -> None:
        price = Price.from_dollars(per_request="0.45")
        assert price.cost(Usage()) == 450_000
        assert price.cost(Usage(requests=2)) == 900_000
        assert price.cost(Usage(requests=0)) == 0

    def test_fractional_audio_seconds(self) -> None:
        price = Price.from_dollars(per_audio_second="0.0001")  # $0.006 a minute
        assert price.cost(Usage(audio_seconds=Decimal("12.345"))) == 1_235  # 1234.5 -> up

    def test_tiny_audio_rate(self) -> None:
        price = Price.from_dollars(per_audio_second="0.0000111")
        # 3600 s * 11.1 micros = 39960 exactly
        assert price.cost(Usage(audio_seconds=Decimal(3600))) == 39_960

    def test_characters(self) -> None:
        price = Price.from_dollars(per_1m_characters="15.00")
        assert price.cost(Usage(characters=1001)) == 15_015

    def test_all_components_add_up(self) -> None:
        price = Price.from_dollars(per_request="0.0005", input_per_1m_tokens="5", per_image="0.042")
        usage = Usage(input_tokens=101, images=2)
        # 500 + 101 * 5 + 2 * 42000 = 500 + 505 + 84000
        assert price.cost(usage) == 85_005

    def test_free_price_costs_nothing(self) -> None:
        assert Price().cost(Usage(input_tokens=10**9, images=5)) == 0

    @pytest.mark.parametrize("whole", [True, False], ids=["whole-micro rates", "sub-micro rates"])
    def test_cost_is_the_exact_sum_rounded_up_once(self, whole: bool) -> None:
        """`cost` (integers when every rate is whole micros) equals the exact `Decimal` sum
        rounded up, for many random prices and usages."""
        rng = random.Random(7)

        def rate() -> str | None:
            if rng.random() < 0.2:
                return None
            micros = rng.randrange(0, 20_000_000)
            return str(Decimal(micros) / 1_000_000) if whole else f"{micros}e-9"

        for _ in range(2_000):
            price = Price.from_dollars(
                per_request=str(Decimal(rng.randrange(0, 5_000)) / 1_000_000),
                input_per_1m_tokens=rate(),
                output_per_1m_tokens=rate(),
                per_image=rate(),
                per_audio_second=rate(),
                per_1m_characters=rate(),
            )
            usage = Usage(
                input_tokens=rng.randrange(0, 10**7),
                output_tokens=rng.randrange(0, 10**6),
                images=rng.randrange(0, 10),
                characters=rng.randrange(0, 10**5),
                audio_seconds=Decimal(rng.randrange(0, 3)) / 10,
                requests=rng.randrange(1, 3),
            )
            exact = price.exact_cost(usage).to_integral_value(rounding=ROUND_CEILING)
            assert price.cost(usage) == int(exact), (price, usage)

    def test_whole_micro_rates_take_the_integer_sum(self) -> None:
        price = Price.from_dollars(input_per_1m_tokens="0.15", per_image="0.04")
        assert price._whole_rates == (150_000, 0, 0, 40_000, 0)
        assert Price.from_dollars(per_image="0.0000005")._whole_rates is None


class TestUsage:
    def test_defaults_to_one_request(self) -> None:
        usage = Usage()
        assert usage.requests == 1
        assert usage.audio_seconds == Decimal(0)

    def test_float_audio_seconds_convert_through_str(self) -> None:
        assert Usage(audio_seconds=12.3).audio_seconds == Decimal("12.3")  # type: ignore[arg-type]

    def test_int_audio_seconds_become_decimal(self) -> None:
        assert isinstance(Usage(audio_seconds=5).audio_seconds, Decimal)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "field", ["requests", "input_tokens", "output_tokens", "images", "characters"]
    )
    def test_negative_quantity_raises(self, field: str) -> None:
        with pytest.raises(ValueError, match=field):
            Usage(**{field: -1})  # type: ignore[arg-type]

    def test_negative_audio_seconds_raises(self) -> None:
        with pytest.raises(ValueError):
            Usage(audio_seconds=Decimal("-0.5"))

    def test_usage_is_frozen(self) -> None:
        usage = Usage()
        with pytest.raises(AttributeError):
            usage.requests = 2  # type: ignore[misc]
