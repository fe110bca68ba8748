"""Speech to text and moderations through the real `openai` SDK, against the FakeUpstream.

Story: a customer uploads a 3.2 s WAV recording (made here with the stdlib `wave`, so its
length is known) to `client.audio.transcriptions.create` and `translations.create`. tollhouse
measures the file, holds 4 s of whisper time, forwards the form upstream with the upstream's
model name, and charges 4 s at $0.006 a minute (the upstream's own `duration` when it answers
verbose JSON, else the measured one), recording `audio_seconds`. A file that is not audio, a
body that is not a form, or an upstream failure charges nothing. Moderations are forwarded
and metered like any call (free when the catalog says so).
"""

from __future__ import annotations

import io
import math
import wave
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select
from tests.e2e.conftest import Stack
from tests.support.catalog import AUDIO_MICROS_PER_SECOND
from tests.support.upstream import TRANSCRIPT

from tollhouse.gateway.tokens import count_tokens
from tollhouse.metering.models import UsageEvent

CREDITS_MICROS = 1_000_000
FRAME_RATE = 8_000
DURATION_SECONDS = 3.2
BILLED_SECONDS = math.ceil(DURATION_SECONDS)
"""The rule: the duration rounded up to the whole second."""
AUDIO_COST_MICROS = BILLED_SECONDS * AUDIO_MICROS_PER_SECOND


def wav_bytes(seconds: float = DURATION_SECONDS) -> bytes:
    """A real WAV file (8 kHz, 8-bit mono, silence) of exactly `seconds`."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(FRAME_RATE)
        wav.writeframes(b"\x80" * round(seconds * FRAME_RATE))
    return buffer.getvalue()


def client(stack: Stack, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=stack.base_url + "/v1", max_retries=0)


async def events(stack: Stack, customer_id: str) -> dict[str, UsageEvent]:
    """The customer's usage events by meter (one call each in these tests)."""
    await stack.runtime.drain()
    async with stack.runtime.db.engine.connect() as conn:
        rows = await conn.execute(select(UsageEvent).where(UsageEvent.customer_id == customer_id))
        return {row.meter: row for row in rows}


async def assert_nothing_charged(stack: Stack, customer_id: str) -> None:
    assert await stack.available(customer_id) == CREDITS_MICROS
    assert await events(stack, customer_id) == {}


class TestTranscriptions:
    async def test_json_answer_is_charged_at_the_measured_seconds(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        raw = await client(stack, key).audio.transcriptions.with_raw_response.create(
            file=("talk.wav", wav_bytes(), "audio/wav"), model="test-whisper", language="en"
        )
        assert raw.parse().text == TRANSCRIPT
        assert int(raw.headers["x-tollhouse-balance-micros"]) == CREDITS_MICROS - AUDIO_COST_MICROS
        assert await stack.available(customer_id) == CREDITS_MICROS - AUDIO_COST_MICROS
        recorded = await events(stack, customer_id)
        assert recorded["audio_seconds"].value == BILLED_SECONDS
        assert recorded["api_calls"].value == 1
        properties = recorded["api_calls"].properties
        assert properties["cost_micros"] == AUDIO_COST_MICROS
        assert properties["usage_source"] == "measured"
        assert properties["route"] == "transcription"

    async def test_upstream_gets_the_form_with_its_model_name(self, stack: Stack) -> None:
        _, key = await stack.customer(credits_micros=CREDITS_MICROS)
        audio = wav_bytes()
        await client(stack, key).audio.transcriptions.create(
            file=("talk.wav", audio, "audio/wav"),
            model="test-whisper",
            prompt="a talk",
            timestamp_granularities=["word", "segment"],
            response_format="verbose_json",
        )
        seen = stack.upstream.requests[-1]
        assert seen.path == "/v1/audio/transcriptions"
        assert seen.body["model"] == "whisper-upstream"
        assert seen.body["prompt"] == "a talk"
        assert seen.body["file"] == {
            "filename": "talk.wav",
            "content_type": "audio/wav",
            "size": len(audio),
        }
        assert key not in str(seen.headers)

    async def test_verbose_answer_is_charged_at_the_upstreams_duration(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        answer = await client(stack, key).audio.transcriptions.create(
            file=("talk.wav", wav_bytes(), "audio/wav"),
            model="test-whisper",
            response_format="verbose_json",
        )
        assert answer.duration == pytest.approx(DURATION_SECONDS)
        assert await stack.available(customer_id) == CREDITS_MICROS - AUDIO_COST_MICROS
        recorded = await events(stack, customer_id)
        assert recorded["audio_seconds"].value == BILLED_SECONDS
        assert recorded["api_calls"].properties["usage_source"] == "upstream"

    async def test_a_file_that_is_not_audio_is_400_before_any_hold(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        calls_before = len(stack.upstream.requests)
        with pytest.raises(openai.BadRequestError) as raised:
            await client(stack, key).audio.transcriptions.create(
                file=("talk.wav", b"RIFF not really a wave file", "audio/wav"),
                model="test-whisper",
            )
        assert raised.value.code == "invalid-audio"
        assert "duration could not be measured" in raised.value.message
        assert len(stack.upstream.requests) == calls_before
        await assert_nothing_charged(stack, customer_id)

    async def test_upstream_failure_charges_nothing(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        with pytest.raises(openai.InternalServerError) as raised:
            await client(stack, key).audio.transcriptions.create(
                file=("talk.wav", wav_bytes(), "audio/wav"), model="test-whisper-500"
            )
        assert raised.value.status_code == 502
        await assert_nothing_charged(stack, customer_id)


class TestTranslations:
    @pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK's mark on it
    async def test_text_answer_is_charged_at_the_measured_seconds(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        text = await client(stack, key).audio.translations.create(
            file=("talk.wav", wav_bytes(), "audio/wav"),
            model="test-whisper",
            response_format="text",
        )
        assert text.strip() == TRANSCRIPT
        assert stack.upstream.requests[-1].path == "/v1/audio/translations"
        assert await stack.available(customer_id) == CREDITS_MICROS - AUDIO_COST_MICROS
        recorded = await events(stack, customer_id)
        assert recorded["audio_seconds"].value == BILLED_SECONDS
        assert recorded["api_calls"].properties["route"] == "translation"


class TestBadUploads:
    """Bodies that are not a valid audio form: 4xx in OpenAI's error shape, nothing charged,
    the upstream never called."""

    @pytest.mark.parametrize(
        ("content_type", "body", "message"),
        [
            ("application/json", b'{"model": "test-whisper"}', "multipart/form-data upload"),
            ("multipart/form-data; boundary=xyz", b"--xyz\r\ngarbage", "malformed"),
            (
                "multipart/form-data; boundary=xyz",
                b'--xyz\r\nContent-Disposition: form-data; name="model"\r\n\r\ntest-whisper'
                b"\r\n--xyz--\r\n",
                "exactly one 'file'",
            ),
        ],
    )
    async def test_not_an_audio_form_is_400(
        self, stack: Stack, content_type: str, body: bytes, message: str
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            response = await http.post(
                "/v1/audio/transcriptions",
                content=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": content_type},
            )
        assert response.status_code == 400, response.text
        error: dict[str, Any] = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert message in error["message"]
        assert stack.upstream.requests == []
        await assert_nothing_charged(stack, customer_id)

    async def test_form_without_model_is_400(self, stack: Stack) -> None:
        _, key = await stack.customer(credits_micros=CREDITS_MICROS)
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            response = await http.post(
                "/v1/audio/transcriptions",
                files={"file": ("talk.wav", wav_bytes(), "audio/wav")},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "model"

    async def test_file_over_the_body_limit_is_413(self, stack: Stack) -> None:
        """The e2e stack's body limit is 64 KiB; 10 s of 8 kHz 8-bit audio is 80 KB."""
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        with pytest.raises(openai.APIStatusError) as raised:
            await client(stack, key).audio.transcriptions.create(
                file=("long.wav", wav_bytes(10.0), "audio/wav"), model="test-whisper"
            )
        assert raised.value.status_code == 413
        await assert_nothing_charged(stack, customer_id)


class TestModerations:
    async def test_free_model_by_default_records_the_call_at_no_cost(self, stack: Stack) -> None:
        """No `model`: OpenAI's default, `omni-moderation-latest`, free in this catalog."""
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        raw = await client(stack, key).moderations.with_raw_response.create(
            input=["I like cake", "and tea"]
        )
        answer = raw.parse()
        assert [result.flagged for result in answer.results] == [False, False]
        assert "x-tollhouse-hold-id" not in raw.headers  # nothing to hold
        assert stack.upstream.requests[-1].body["model"] == "echo"
        assert await stack.available(customer_id) == CREDITS_MICROS
        recorded = await events(stack, customer_id)
        assert recorded["api_calls"].value == 1
        assert recorded["api_calls"].model == "omni-moderation-latest"
        assert recorded["api_calls"].properties["cost_micros"] == 0
        assert recorded["api_calls"].properties["route"] == "moderation"

    async def test_priced_model_charges_its_input_tokens(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        text = "Is this sentence harmful in any way at all?"
        tokens = count_tokens(text, "cl100k_base")
        await client(stack, key).moderations.create(
            model="test-moderation-priced",
            input=[
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": "x"}},
            ],
        )
        assert await stack.available(customer_id) == CREDITS_MICROS - tokens  # 1 micro a token
        recorded = await events(stack, customer_id)
        assert recorded["input_tokens"].value == tokens
        assert recorded["api_calls"].properties["cost_micros"] == tokens

    @pytest.mark.parametrize("payload", [{}, {"input": 5}, {"input": [{"type": "text"}]}])
    async def test_bad_input_is_400_never_500(self, stack: Stack, payload: dict[str, Any]) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            response = await http.post(
                "/v1/moderations", json=payload, headers={"Authorization": f"Bearer {key}"}
            )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == "input"
        await assert_nothing_charged(stack, customer_id)
