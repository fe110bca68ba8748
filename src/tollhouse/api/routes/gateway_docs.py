"""The gateway routes as the OpenAPI document describes them: documentation only, never mounted.

`TollhouseApp` answers the gateway's POSTs with the raw `routes.gateway.call_model` before any
routing, and `GET /v1/models` is a plain Starlette route, so FastAPI cannot see them: these
routes give `api.docs` their request and response shapes, bearer security and problems, and
their bodies are never run. The request models name the fields tollhouse reads (to estimate
and limit the call); every other field is passed to the upstream as sent, so they accept any
other member. The response models are OpenAI's, as the upstream answers them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from tollhouse.api import problems
from tollhouse.api.deps import api_key
from tollhouse.gateway.estimate import MAX_CHOICES, MAX_IMAGES, MAX_SPEECH_CHARACTERS

MAX_TOKENS = 10_000_000

_UPSTREAM_4XX: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "description": "The upstream refused the call: its status and body, passed through "
        "(nothing is charged)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}

router = APIRouter(
    tags=["gateway"],
    dependencies=[Depends(api_key)],
    responses=problems.responses(401, 403, openai_shape=True),
)
"""Never included in the app: `api.docs` passes its routes to the OpenAPI generator only."""

_CALL_PROBLEMS = {
    **_UPSTREAM_4XX,
    **problems.responses(400, 402, 404, 413, 422, 429, 502, 503, 504, openai_shape=True),
}


class _Open(BaseModel):
    """An OpenAI object: members beyond the ones named are allowed (and passed on)."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)


class _Call(_Open):
    """Fields every call has; any other member goes to the upstream unchanged."""

    model: str = Field(min_length=1)
    """A model id of the catalog (`GET /v1/models`): picks the upstream, price and limits."""


class ChatMessage(_Open):
    role: str
    """`system`, `user`, `assistant`, `tool`, ..."""
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Open):
    include_usage: StrictBool = False
    """Ask for the final usage chunk (tollhouse asks the upstream for it either way)."""


class ChatCompletionRequest(_Call):
    messages: list[ChatMessage] = Field(min_length=1)
    """Counted with the model's tokenizer for the estimate."""
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    """Output tokens held for (capped at the model's `max_output_tokens`)."""
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    """Used when `max_completion_tokens` is absent."""
    n: int | None = Field(default=None, ge=1, le=MAX_CHOICES)
    stream: StrictBool = False
    """Answer as server-sent events (`text/event-stream`)."""
    stream_options: StreamOptions | None = None


class CompletionRequest(_Call):
    prompt: str | list[str] | list[int]
    """Text, texts, or token ids."""
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    n: int | None = Field(default=None, ge=1, le=MAX_CHOICES)
    stream: StrictBool = False


class EmbeddingRequest(_Call):
    input: str | list[str] | list[int]
    """Text, texts, or token ids."""


class ImageRequest(_Call):
    prompt: str = Field(min_length=1)
    n: int | None = Field(default=None, ge=1, le=MAX_IMAGES)
    """Images to make; each is charged the model's per-image price."""


class SpeechRequest(_Call):
    input: str = Field(min_length=1, max_length=MAX_SPEECH_CHARACTERS)
    """Charged per character."""


class ModerationRequest(_Open):
    model: str = Field(default="omni-moderation-latest", min_length=1)
    """A moderation model of the catalog; OpenAI's default when omitted."""
    input: str | list[str] | list[dict[str, Any]]
    """Text, texts, or multimodal items (`{"type": "text", "text"}`, `{"type": "image_url"}`):
    the text is counted into input tokens, charged if the model prices them."""


class Transcription(_Open):
    text: str
    duration: float | None = None
    """Seconds of audio (verbose answers): the seconds charged, rounded up."""


class ModerationResult(_Open):
    flagged: bool
    categories: dict[str, Any]
    category_scores: dict[str, Any]


class Moderation(_Open):
    id: str
    model: str
    results: list[ModerationResult]


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class ChatChoice(_Open):
    index: int
    message: ChatMessage
    finish_reason: str | None


class ChatCompletion(_Open):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    """The upstream's model name."""
    choices: list[ChatChoice]
    usage: Usage | None = None
    """What was charged for (counted locally when the upstream leaves it out)."""


class CompletionChoice(_Open):
    index: int
    text: str
    finish_reason: str | None


class Completion(_Open):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class Embedding(_Open):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str
    """Floats, or base64 with `encoding_format: base64`."""


class EmbeddingList(_Open):
    object: Literal["list"]
    model: str
    data: list[Embedding]
    usage: Usage | None = None


class Image(_Open):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(_Open):
    created: int
    data: list[Image]


class GatewayModel(_Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    """The catalog's upstream name."""
    category: str
    """The model category (`text`, `text-to-image`, ...): decides the rate limit."""


class ModelList(_Open):
    object: Literal["list"]
    data: list[GatewayModel]


_EVENT_STREAM = {
    "text/event-stream": {
        "schema": {
            "description": "With `stream: true`, one server-sent event (before OpenAPI 3.2's "
            "`itemSchema`, `schema` describes each event of a stream)",
            "type": "object",
            "properties": {
                "data": {
                    "type": "string",
                    "description": "A chunk object as JSON (`chat.completion.chunk`, "
                    "`text_completion`); the last event's data is `[DONE]`",
                },
                "event": {"type": "string"},
            },
            "required": ["data"],
        }
    }
}


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={**_CALL_PROBLEMS, 200: {"content": _EVENT_STREAM}},
)
async def chat_completions(body: ChatCompletionRequest) -> None:
    """OpenAI's chat completions, through tollhouse: the key is checked, the estimate (prompt
    tokens + held output tokens, times `n`) is rate-limited and held on the wallet, the call
    is forwarded to the model's upstream (the next of its fallback upstreams when one fails
    before answering), and the real usage is charged after the answer.
    Headers: `x-tollhouse-request-id`, `x-tollhouse-hold-id`, `x-tollhouse-balance-micros`,
    `x-tollhouse-upstream` (the upstream that answered), `RateLimit-Policy`, `RateLimit` and
    `RateLimit-Limit`/`-Remaining`/`-Reset`."""


@router.post(
    "/v1/completions",
    response_model=Completion,
    responses={**_CALL_PROBLEMS, 200: {"content": _EVENT_STREAM}},
)
async def completions(body: CompletionRequest) -> None:
    """OpenAI's legacy completions, held and charged as chat completions are."""


@router.post("/v1/embeddings", response_model=EmbeddingList, responses=_CALL_PROBLEMS)
async def embeddings(body: EmbeddingRequest) -> None:
    """OpenAI's embeddings: input tokens are counted with the model's tokenizer and held."""


@router.post("/v1/images/generations", response_model=ImagesResponse, responses=_CALL_PROBLEMS)
async def images(body: ImageRequest) -> None:
    """OpenAI's image generation: `n` images are held at the model's per-image price."""


@router.post(
    "/v1/audio/speech",
    response_class=Response,
    responses={
        **_CALL_PROBLEMS,
        200: {
            "description": "The audio, in the upstream's format (`response_format`)",
            "content": {"audio/*": {"schema": {"type": "string", "format": "binary"}}},
        },
    },
)
async def speech(body: SpeechRequest) -> None:
    """OpenAI's text to speech: charged per character of `input`."""


_AUDIO_ANSWER = {
    **_CALL_PROBLEMS,
    200: {
        "description": "The text: JSON (`json`, `verbose_json`) or plain (`text`, `srt`, `vtt`)",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}
AudioFile = Annotated[
    UploadFile,
    File(
        description="The audio (WAV, MP3, FLAC, Ogg, M4A: its duration is measured, rounded "
        "up to the whole second, and held; a file that cannot be measured answers 400 "
        "`invalid-audio`)"
    ),
]
ModelField = Annotated[str, Form(min_length=1, description="A speech-to-text model id")]
FormatField = Annotated[
    str | None,
    Form(
        description="`json` (default), `verbose_json` (its `duration` is what is charged), "
        "`text`, `srt`, `vtt`; other fields (`language`, `prompt`, ...) pass through"
    ),
]


@router.post("/v1/audio/transcriptions", response_model=Transcription, responses=_AUDIO_ANSWER)
async def transcriptions(
    file: AudioFile, model: ModelField, response_format: FormatField = None
) -> None:
    """OpenAI's speech to text (multipart upload within the body limit): charged per second
    of audio, the upstream's `duration` when it reports one, else the measured one."""


@router.post("/v1/audio/translations", response_model=Transcription, responses=_AUDIO_ANSWER)
async def translations(
    file: AudioFile, model: ModelField, response_format: FormatField = None
) -> None:
    """OpenAI's speech to English text, charged as transcriptions are."""


@router.post("/v1/moderations", response_model=Moderation, responses=_CALL_PROBLEMS)
async def moderations(body: ModerationRequest) -> None:
    """OpenAI's moderations: metered like every call (`api_calls`, input tokens), charged
    at the model's price (free when the catalog prices it at nothing)."""


@router.get("/v1/models", response_model=ModelList)
async def models() -> None:
    """The models this key may call: its plan's and its own allowed models (operators: all)."""
