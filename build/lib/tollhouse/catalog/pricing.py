"""Prices and the usage they are applied to.

A `Price` holds one rate per usage component, in **micros of the catalog currency** per the
component's unit (per request, per 1M tokens, per image, per audio second, per 1M characters),
as exact `Decimal`s (`$0.15 / 1M tokens` is `Decimal(150000)`; `$0.0000111` an audio second is
`Decimal("11.1")`). `Price.cost` multiplies every component exactly, sums the exact parts and
rounds **once, up** to a whole micro (`tollhouse.money.charge`), so a cost is never below its
exact value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tollhouse import money

MILLION_INT = 1_000_000
"""Units in the "per 1M" YAML rates (tokens, characters)."""
MILLION = Decimal(MILLION_INT)

ZERO = Decimal(0)
_RATES = (
    "per_request_micros",
    "input_per_1m_tokens",
    "output_per_1m_tokens",
    "per_image",
    "per_audio_second",
    "per_1m_characters",
)
"""`Price`'s rate fields."""


@dataclass(frozen=True, slots=True)
class Usage:
    """What one request consumed (or is estimated to consume). All quantities >= 0.

    `audio_seconds` is a `Decimal` (seconds of input audio, may be fractional); an `int` or a
    `float` given here is converted through `str()` so that `12.3` stays exactly 12.3.

    Raises:
        ValueError: a negative quantity, or a non-finite `audio_seconds`.
    """

    requests: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    audio_seconds: Decimal = field(default=ZERO)
    characters: int = 0

    def __post_init__(self) -> None:  # on every call, twice: the common case is kept short
        seconds = self.audio_seconds
        if seconds is not ZERO:
            if not isinstance(seconds, Decimal):
                seconds = Decimal(str(seconds))
                object.__setattr__(self, "audio_seconds", seconds)
            if not seconds.is_finite():
                raise ValueError("audio_seconds must be finite")
            if seconds < 0:
                raise ValueError("audio_seconds must not be negative")
        if (
            min(self.requests, self.input_tokens, self.output_tokens, self.images, self.characters)
            < 0
        ):
            for name in ("requests", "input_tokens", "output_tokens", "images", "characters"):
                if getattr(self, name) < 0:
                    raise ValueError(f"{name} must not be negative")


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price. Each attribute is named like its YAML key and holds **micros** of the
    catalog currency for that key's unit: `input_per_1m_tokens=Decimal(150000)` is $0.15 per
    1M input tokens; `per_image=Decimal(40000)` is $0.04 an image; `per_audio_second` is
    micros per second of audio; `per_1m_characters` micros per 1M characters.

    A rate is `None` when the YAML does not price that component (nothing is charged for
    it); `per_request_micros` is a whole number of micros, `0` when there is no request fee.
    """

    per_request_micros: int = 0
    input_per_1m_tokens: Decimal | None = None
    output_per_1m_tokens: Decimal | None = None
    per_image: Decimal | None = None
    per_audio_second: Decimal | None = None
    per_1m_characters: Decimal | None = None
    _whole_rates: tuple[int, int, int, int, int] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    """(input, output, characters per 1M; image; request) as ints when every rate but audio's
    is a whole number of micros: `cost` then sums exactly in integers (no `Decimal`)."""

    def __post_init__(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if value is not None and (value < 0 or not Decimal(value).is_finite()):
                raise ValueError(f"{name} must be finite and not negative")
        rates = (
            self.input_per_1m_tokens,
            self.output_per_1m_tokens,
            self.per_1m_characters,
            self.per_image,
            self.per_request_micros,
        )
        if all(rate is None or rate == int(rate) for rate in rates):
            whole = tuple(0 if rate is None else int(rate) for rate in rates)
            object.__setattr__(self, "_whole_rates", whole)

    @classmethod
    def from_dollars(
        cls,
        *,
        per_request: Dollars | None = None,
        input_per_1m_tokens: Dollars | None = None,
        output_per_1m_tokens: Dollars | None = None,
        per_image: Dollars | None = None,
        per_audio_second: Dollars | None = None,
        per_1m_characters: Dollars | None = None,
    ) -> Price:
        """Build a price from the YAML's dollar amounts, exactly (numbers go through `str()`).

        Raises:
            ValueError: `per_request` finer than a micro, or any amount negative.
        """
        return cls(
            per_request_micros=0 if per_request is None else money.to_micros(per_request),
            input_per_1m_tokens=_micros(input_per_1m_tokens),
            output_per_1m_tokens=_micros(output_per_1m_tokens),
            per_image=_micros(per_image),
            per_audio_second=_micros(per_audio_second),
            per_1m_characters=_micros(per_1m_characters),
        )

    @property
    def is_free(self) -> bool:
        """True when no component charges anything."""
        return all(not getattr(self, name) for name in _RATES)

    def exact_cost(self, usage: Usage) -> Decimal:
        """The unrounded cost of `usage` in micros (a `Decimal`, exact)."""
        per_million = (
            _times(usage.input_tokens, self.input_per_1m_tokens)
            + _times(usage.output_tokens, self.output_per_1m_tokens)
            + _times(usage.characters, self.per_1m_characters)
        )
        return (
            Decimal(self.per_request_micros) * usage.requests
            + per_million / MILLION
            + _times(usage.images, self.per_image)
            + _times(usage.audio_seconds, self.per_audio_second)
        )

    def cost(self, usage: Usage) -> int:
        """The cost of `usage` in whole micros: exact sum of all parts, rounded up once."""
        whole = self._whole_rates
        if whole is not None and not (usage.audio_seconds and self.per_audio_second):
            per_input, per_output, per_character, per_image, per_request = whole
            millionths = (
                usage.input_tokens * per_input
                + usage.output_tokens * per_output
                + usage.characters * per_character
                + MILLION_INT * (usage.images * per_image + usage.requests * per_request)
            )
            return -(-millionths // MILLION_INT)  # rounded up, as `money.charge`
        return money.charge(self.exact_cost(usage), Decimal(1))

    def as_dollars(self) -> dict[str, str]:
        """The priced components keyed like the YAML, as exact dollar strings.

        `{"input_per_1m_tokens": "0.15", "output_per_1m_tokens": "0.6"}`: for listings
        (`/v1/models`, the dashboard) and round-trips. Unpriced components are left out.
        """
        components: dict[str, Decimal | None] = {
            "per_request": Decimal(self.per_request_micros) if self.per_request_micros else None,
            "input_per_1m_tokens": self.input_per_1m_tokens,
            "output_per_1m_tokens": self.output_per_1m_tokens,
            "per_image": self.per_image,
            "per_audio_second": self.per_audio_second,
            "per_1m_characters": self.per_1m_characters,
        }
        return {
            key: _plain(micros / money.MICROS_PER_UNIT)
            for key, micros in components.items()
            if micros is not None
        }


Dollars = Decimal | str | int
"""A dollar amount as accepted by `Price.from_dollars`."""


def _micros(dollars: Dollars | None) -> Decimal | None:
    """Dollars -> micros, exact (`"0.15"` -> `Decimal(150000)`); `None` stays `None`."""
    return None if dollars is None else money.rate_to_micros(Decimal(str(dollars)))


def _times(quantity: int | Decimal, rate: Decimal | None) -> Decimal:
    """`quantity * rate`, exact; an unpriced component costs nothing."""
    return ZERO if rate is None else rate * quantity


def _plain(value: Decimal) -> str:
    """`Decimal("0.150000")` -> `"0.15"`, never exponent notation."""
    return format(value.normalize(), "f")
