"""Audio uploads of `POST /v1/audio/transcriptions` and `/v1/audio/translations`: the
multipart form, the audio's length, the form sent upstream, and the seconds billed.

**The form** is `multipart/form-data` (RFC 7578), as OpenAI's audio API takes it: one `file`
part (the audio, with its filename), a `model` field, and any other fields (`response_format`,
`language`, `prompt`, `temperature`, `timestamp_granularities[]`, ...), which go upstream as
they came, repeated names included, with the upstream's model name in `model`. The body is
already in memory and within `TOLLHOUSE_MAX_BODY_BYTES` (`api.middleware.BodyLimit`); it is
read with `python-multipart` (Starlette's and FastAPI's parser).

**Duration** is measured from the file with `mutagen`, which reads the stream headers of WAV,
MP3, FLAC, Ogg (Vorbis, Opus), MP4/M4A, AIFF and more, without decoding the audio. A file it
cannot measure (WebM, a truncated or non-audio file, zero length) is refused with 400
`invalid-audio` before anything is held: the hold is the price of the measured duration, and
without one no hold can be sized. Convert WebM to one of the formats above first.

A `stream=true` transcription is forwarded, and the upstream's events passed on as one whole
answer, charged at the measured duration.

**Seconds billed** = `ceil(duration)`: rounded up to the whole second, once (a 3.2 s file is
billed 4 s). The charge uses the upstream's own `duration` when its answer carries one
(`response_format=verbose_json`), else the measured one (`usage_source` `upstream` or
`measured` on the usage events); either is rounded the same way, then priced at the model's
`per_audio_second` (`catalog.pricing.Price`).
"""

from __future__ import annotations

import io
import math
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import mutagen
from mutagen import MutagenError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from tollhouse.catalog import Usage
from tollhouse.gateway.errors import InvalidAudio, InvalidRequest

MAX_FIELDS = 64
"""Most form fields besides the file: more is refused (400), as Starlette bounds them."""


@dataclass(frozen=True, slots=True)
class AudioUpload:
    """A parsed audio form: `fields` in order (name, value) without the file, the file's
    bytes, name and content type, and its measured length in seconds (> 0)."""

    fields: list[tuple[str, str]]
    audio: bytes
    filename: str
    content_type: str
    duration_seconds: Decimal

    @property
    def model(self) -> str:
        """The `model` field (`parse_upload` makes sure there is exactly one)."""
        return next(value for name, value in self.fields if name == "model")

    @property
    def usage(self) -> Usage:
        """The usage a call on this file reaches: its billed seconds (`billed_seconds`)."""
        return Usage(audio_seconds=billed_seconds(self.duration_seconds))

    def upstream_form(self, upstream_model: str) -> tuple[bytes, str]:
        """`(body, content type)` of the form to send upstream: the fields as they came with
        `model` set to `upstream_model`, then the file."""
        boundary = "tollhouse-" + _boundary_token(self.audio)
        parts: list[bytes] = []
        for name, value in self.fields:
            if name == "model":
                value = upstream_model
            parts.append(_part_head(boundary, name) + b"\r\n" + value.encode() + b"\r\n")
        head = _part_head(boundary, "file", filename=self.filename)
        head += f"Content-Type: {self.content_type}\r\n".encode()
        parts.append(head + b"\r\n" + self.audio + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return body, f"multipart/form-data; boundary={boundary}"


def billed_seconds(duration: Decimal | float) -> Decimal:
    """`ceil(duration)` as a whole `Decimal` number of seconds (the module's rule)."""
    return Decimal(math.ceil(Decimal(str(duration))))


def measure(audio: bytes) -> Decimal:
    """The length of `audio` in seconds (> 0), from its stream headers (mutagen).

    Raises:
        InvalidAudio: not a format mutagen measures, corrupt, or of no length (400).
    """
    try:
        parsed = mutagen.File(io.BytesIO(audio))
    except (MutagenError, ValueError, EOFError, OverflowError, IndexError):
        parsed = None
    length = getattr(getattr(parsed, "info", None), "length", None)
    if not isinstance(length, int | float) or not math.isfinite(length) or length <= 0:
        raise InvalidAudio(
            "the audio file's duration could not be measured: send WAV, MP3, FLAC, Ogg or "
            "M4A audio",
            param="file",
        )
    return Decimal(str(length))


def parse_upload(raw: bytes, content_type: str | None) -> AudioUpload:
    """Read a `multipart/form-data` body into an `AudioUpload` with a measured duration.

    Raises:
        InvalidRequest: not multipart, a malformed form, no `file` or several, no `model`,
            a field that is not UTF-8, more than `MAX_FIELDS` fields (400).
        InvalidAudio: see `measure`.
    """
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest(
            "this route takes a multipart/form-data upload (fields 'file' and 'model')"
        )
    parts = _Parts()
    try:
        parser = MultipartParser(boundary, parts.callbacks())
        parser.write(raw)
        parser.finalize()
    except (MultipartParseError, ValueError):
        parser = None
    if parser is None or parser.state not in (MultipartState.END, MultipartState.BOUNDARY_PADDING):
        raise InvalidRequest("the multipart/form-data body is malformed or incomplete")
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, str, bytes]] = []
    for headers, data in parts.done:
        disposition, params = parse_options_header(headers.get(b"content-disposition"))
        name = params.get(b"name")
        if disposition != b"form-data" or name is None:
            raise InvalidRequest("every part of the form needs a form-data name")
        if name == b"file":
            filename = params.get(b"filename", b"audio").decode("utf-8", "replace")
            file_type = headers.get(b"content-type", b"application/octet-stream")
            files.append((filename, file_type.decode("latin-1"), data))
            continue
        try:
            fields.append((name.decode(), data.decode()))
        except UnicodeDecodeError:
            param = name.decode("utf-8", "replace")
            raise InvalidRequest("form fields must be UTF-8 text", param=param) from None
    if len(files) != 1:
        raise InvalidRequest("the form must carry exactly one 'file'", param="file")
    if len(fields) > MAX_FIELDS:
        raise InvalidRequest(f"the form has more than {MAX_FIELDS} fields")
    model = [value for field, value in fields if field == "model"]
    if len(model) != 1 or not model[0]:
        raise InvalidRequest("'model' must be one non-empty field", param="model")
    filename, part_type, audio = files[0]
    return AudioUpload(fields, audio, filename, part_type, measure(audio))


class _Parts:
    """python-multipart's callbacks, collecting each part's headers and bytes."""

    def __init__(self) -> None:
        self.done: list[tuple[dict[bytes, bytes], bytes]] = []
        self._headers: dict[bytes, bytes] = {}
        self._name = b""
        self._value = b""
        self._data: list[bytes] = []

    def callbacks(self) -> Any:
        def part_begin() -> None:
            self._headers, self._data = {}, []

        def header_field(data: bytes, start: int, end: int) -> None:
            self._name += data[start:end]

        def header_value(data: bytes, start: int, end: int) -> None:
            self._value += data[start:end]

        def header_end() -> None:
            self._headers[self._name.lower()] = self._value
            self._name = self._value = b""

        def part_data(data: bytes, start: int, end: int) -> None:
            self._data.append(data[start:end])

        def part_end() -> None:
            self.done.append((self._headers, b"".join(self._data)))

        return {
            "on_part_begin": part_begin,
            "on_header_field": header_field,
            "on_header_value": header_value,
            "on_header_end": header_end,
            "on_part_data": part_data,
            "on_part_end": part_end,
        }


def _part_head(boundary: str, name: str, *, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{_quoted(name)}"'
    if filename is not None:
        disposition += f'; filename="{_quoted(filename)}"'
    return f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()


def _quoted(text: str) -> str:
    """A name for a quoted-string of Content-Disposition, as browsers encode it (RFC 7578
    4.2: `"` as %22, CR and LF as %0D and %0A)."""
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _boundary_token(audio: bytes) -> str:
    """A boundary that does not occur in the file: random, tried again in the unlikely case."""
    while True:
        token = secrets.token_hex(16)
        if token.encode() not in audio:
            return token
