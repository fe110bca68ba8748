"""UsageEventIn validation and parse_events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from tollhouse.metering import InvalidUsageEvent, UsageEventIn, parse_events

VALID: dict[str, Any] = {
    "id": "req_01:input-tokens.v1",
    "customer_id": "cus_4Vx",
    "meter": "input_tokens",
    "value": 812,
    "occurred_at": datetime(2026, 3, 15, 12, 0, tzinfo=UTC),
}


class TestUsageEventIn:
    def test_valid_event_is_built_with_defaults(self) -> None:
        event = UsageEventIn(**VALID)

        assert (event.key_id, event.model, event.properties) == (None, None, {})

    def test_occurred_at_is_normalised_to_utc(self) -> None:
        paris = datetime(2026, 3, 15, 13, 0, tzinfo=timezone(timedelta(hours=1)))

        event = UsageEventIn(**{**VALID, "occurred_at": paris})

        assert event.occurred_at == datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
        assert event.occurred_at.utcoffset() == timedelta(0)

    def test_iso_string_with_offset_is_parsed(self) -> None:
        event = UsageEventIn.model_validate({**VALID, "occurred_at": "2026-03-15T12:00:00Z"})

        assert event.occurred_at == VALID["occurred_at"]

    def test_json_body_is_parsed(self) -> None:
        body = (
            '{"id": "e1", "customer_id": "cus_a", "meter": "images", "value": 2,'
            ' "occurred_at": "2026-03-15T12:00:00+00:00", "properties": {"size": "1024x1024"}}'
        )

        event = UsageEventIn.model_validate_json(body)

        assert (event.value, event.properties) == (2, {"size": "1024x1024"})

    def test_zero_and_max_values_are_accepted(self) -> None:
        assert UsageEventIn(**{**VALID, "value": 0}).value == 0
        assert UsageEventIn(**{**VALID, "value": 2**62}).value == 2**62

    def test_property_scalars_keep_their_types(self) -> None:
        properties = {"s": "x", "i": 1, "f": 1.5, "b": True, "n": None}

        event = UsageEventIn(**{**VALID, "properties": properties})

        assert event.properties == properties
        assert type(event.properties["b"]) is bool
        assert type(event.properties["i"]) is int

    def test_event_is_immutable(self) -> None:
        event = UsageEventIn(**VALID)

        with pytest.raises(ValidationError):
            event.value = 5

    @pytest.mark.parametrize(
        ("field", "bad"),
        [
            ("value", -1),
            ("value", 1.0),
            ("value", 2.5),
            ("value", True),
            ("value", "5"),
            ("value", 2**62 + 1),
            ("occurred_at", datetime(2026, 3, 15, 12, 0)),
            ("occurred_at", "2026-03-15T12:00:00"),
            ("id", ""),
            ("id", "has space"),
            ("id", "slash/id"),
            ("id", "x" * 129),
            ("customer_id", ""),
            ("customer_id", "c" * 33),
            ("meter", "Input_tokens"),
            ("meter", "1tokens"),
            ("meter", "input-tokens"),
            ("meter", "m" * 65),
            ("key_id", "k" * 33),
            ("model", ""),
            ("properties", {f"k{n}": n for n in range(17)}),
            ("properties", {"nested": {"a": 1}}),
            ("properties", {"list": [1, 2]}),
            ("properties", {"nan": float("nan")}),
            ("properties", {"long": "x" * 1025}),
            ("properties", {"": 1}),
            ("unexpected", 1),
        ],
    )
    def test_invalid_field_is_rejected(self, field: str, bad: object) -> None:
        with pytest.raises(ValidationError) as caught:
            UsageEventIn.model_validate({**VALID, field: bad})

        assert caught.value.errors()[0]["loc"][0] == field

    def test_id_of_128_allowed_chars_is_accepted(self) -> None:
        event_id = ("Az09_.:-" * 16)[:128]

        assert UsageEventIn(**{**VALID, "id": event_id}).id == event_id

    def test_sixteen_properties_are_accepted(self) -> None:
        properties = {f"k{n}": n for n in range(16)}

        assert len(UsageEventIn(**{**VALID, "properties": properties}).properties) == 16


class TestParseEvents:
    def test_valid_items_become_events(self) -> None:
        events = parse_events([VALID, {**VALID, "id": "e2"}])

        assert [e.id for e in events] == [VALID["id"], "e2"]

    def test_errors_are_collected_with_their_location(self) -> None:
        items = [VALID, {**VALID, "value": -1}, {**VALID, "meter": "Bad", "value": 1.5}]

        with pytest.raises(InvalidUsageEvent) as caught:
            parse_events(items)

        error = caught.value
        assert (error.status, error.code) == (422, "invalid-usage-event")
        locs = sorted(item["loc"] for item in error.extra["errors"])
        assert locs == ["events.1.value", "events.2.meter", "events.2.value"]
