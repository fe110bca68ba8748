"""`gateway.audio`: the form read, the form written upstream, the duration and its rounding."""

from __future__ import annotations

import io
import wave
from decimal import Decimal

import pytest

from tollhouse.gateway.audio import billed_seconds, measure, parse_upload
from tollhouse.gateway.errors import InvalidAudio, InvalidRequest

FIELDS = [
    ("model", "whisper-1"),
    ("timestamp_granularities[]", "word"),
    ("timestamp_granularities[]", "segment"),
    ("prompt", 'a "quoted"\r\nprompt'),
]


def wav(frames: int, rate: int = 8_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * frames)
    return buffer.getvalue()


class TestBilledSeconds:
    @pytest.mark.parametrize(
        ("duration", "billed"),
        [(Decimal("3"), 3), (Decimal("3.2"), 4), (Decimal("0.001"), 1), (59.5, 60), (0, 0)],
    )
    def test_rounds_up_to_the_whole_second(self, duration: Decimal | float, billed: int) -> None:
        assert billed_seconds(duration) == Decimal(billed)


class TestMeasure:
    def test_wav_duration_is_exact(self) -> None:
        assert measure(wav(12_000)) == Decimal("1.5")

    @pytest.mark.parametrize("data", [b"", b"RIFF0000WAVE", b"not audio at all", wav(0)])
    def test_unmeasurable_file_is_invalid_audio(self, data: bytes) -> None:
        with pytest.raises(InvalidAudio) as raised:
            measure(data)
        assert (raised.value.status, raised.value.code) == (400, "invalid-audio")


class TestForm:
    def test_upstream_form_reads_back_with_the_upstream_model(self) -> None:
        audio = wav(8_000)
        upload = parse_upload(*_form(FIELDS, audio))
        body, content_type = upload.upstream_form("upstream/whisper")
        again = parse_upload(body, content_type)

        assert again.fields == [("model", "upstream/whisper"), *FIELDS[1:]]
        assert (again.audio, again.filename, again.content_type) == (audio, "a.wav", "audio/wav")
        assert again.duration_seconds == Decimal(1)

    def test_two_files_are_refused(self) -> None:
        body, content_type = _form(FIELDS, wav(8_000))
        doubled = body.replace(b"--b--\r\n", b"") + _form([], wav(8_000))[0]
        with pytest.raises(InvalidRequest, match="exactly one 'file'"):
            parse_upload(doubled, content_type)

    def test_a_field_that_is_not_utf8_is_refused(self) -> None:
        body, content_type = _form([("model", "w"), ("prompt", "\udcff")], wav(8_000))
        with pytest.raises(InvalidRequest, match="UTF-8"):
            parse_upload(body, content_type)


def _form(fields: list[tuple[str, str]], audio: bytes) -> tuple[bytes, str]:
    """A multipart body with boundary `b`, as a client sends it."""
    parts = [
        b'--b\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (name.encode(), value.encode("utf-8", "surrogateescape"))
        for name, value in fields
    ]
    parts.append(
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + audio + b"\r\n"
    )
    return b"".join(parts) + b"--b--\r\n", "multipart/form-data; boundary=b"
