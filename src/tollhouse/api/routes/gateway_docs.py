"""The gateway routes as the OpenAPI document describes them: documentation only, never mounted.

`TollhouseApp` answers the gateway's POSTs with the raw `routes.gateway.call_model` before any
routing, and `GET /v1/models` is a plain Starlette route, so FastAPI cannot see them: these
routes give `api.docs` their request and response shapes, bearer security and problems, and
their bodies are never run. The request models name the fields tollhouse reads (to estimate
and limit the call); every other field is passed to the upstream as sent, so they accept any
other member. The response models are OpenAI's (Anthropic's on `/v1/messages`), as the
upstream answers them.
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


class ResponsesRequest(_Call):
    input: str | list[dict[str, Any]] | None = None
    """Text, or input items (messages, tool outputs, ...): counted with the model's tokenizer
    for the estimate (absent when `previous_response_id` carries the conversation)."""
    instructions: str | list[dict[str, Any]] | None = None
    """Counted for the estimate too."""
    max_output_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    """Output tokens held for (capped at the model's `max_output_tokens`)."""
    stream: StrictBool = False
    """Answer as server-sent events (`text/event-stream`), passed through unchanged."""


class AnthropicMessage(_Open):
    role: str
    """`user` or `assistant`."""
    content: str | list[dict[str, Any]]


class MessagesRequest(_Call):
    messages: list[AnthropicMessage] = Field(min_length=1)
    """Counted with the model's tokenizer for the estimate."""
    system: str | list[dict[str, Any]] | None = None
    """Counted for the estimate too."""
    max_tokens: int = Field(ge=1, le=MAX_TOKENS)
    """Output tokens held for (capped at the model's `max_output_tokens`)."""
    stream: StrictBool = False
    """Answer as server-sent events (`text/event-stream`), passed through unchanged."""


class CountTokensRequest(_Call):
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None


class TokenCount(_Open):
    input_tokens: int
    """The prompt's tokens, counted by tollhouse with the model's tokenizer."""


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


class ResponsesUsage(_Open):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class ResponseObject(_Open):
    id: str
    object: Literal["response"]
    created_at: float
    status: str | None = None
    model: str
    output: list[dict[str, Any]]
    usage: ResponsesUsage | None = None
    """What was charged for (the output counted locally when the upstream leaves it out)."""


class AnthropicUsage(_Open):
    input_tokens: int
    """Charged with `cache_read_input_tokens` and `cache_creation_input_tokens`, at the input
    price."""
    output_tokens: int


class MessageObject(_Open):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None = None
    usage: AnthropicUsage | None = None


class GatewayModel(_Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    """The catalog's upstream name."""
    category: str
    """The model category (`text`, `text-to-image`, ...): decides the rate limit."""
    routes: list[str]
    """The gateway paths that serve it (`/v1/chat/completions`, `/v1/messages`, ...)."""


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


_RESPONSES_STREAM = {
    "text/event-stream": {
        "schema": {
            "description": "With `stream: true`, one server-sent event of the Responses API, "
            "passed through unchanged; the last is `response.completed` (or "
            "`response.incomplete`, `response.failed`) with the response's `usage`",
            "type": "object",
            "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
            "required": ["data"],
        }
    }
}

_MESSAGES_STREAM = {
    "text/event-stream": {
        "schema": {
            "description": "With `stream: true`, one server-sent event of the Messages API "
            "(`message_start`, `content_block_delta`, `message_delta`, `message_stop`, ...), "
            "passed through unchanged",
            "type": "object",
            "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
            "required": ["data"],
        }
    }
}

_MESSAGES_PROBLEMS = {
    **_UPSTREAM_4XX,
    **problems.responses(
        400, 401, 402, 403, 404, 413, 422, 429, 502, 503, 504, anthropic_shape=True
    ),
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
    before answering), and the real usage is charged before the answer is sent (a stream:
    before its last event).
    Headers: `x-tollhouse-request-id`, `x-tollhouse-hold-id`, `x-tollhouse-balance-micros`,
    `x-tollhouse-upstream` (the upstream that answered), `x-tollhouse-cost-micros` (what the
    call cost; a stream ends with the SSE comment `: x-tollhouse-cost-micros=<n>` instead),
    `RateLimit-Policy`, `RateLimit` and `RateLimit-Limit`/`-Remaining`/`-Reset`. A model not
    served on this route (another category's or protocol's) is a 400 `wrong-route` naming
    the route that serves it."""


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


@router.post(
    "/v1/responses",
    response_model=ResponseObject,
    responses={**_CALL_PROBLEMS, 200: {"content": _RESPONSES_STREAM}},
)
async def responses(body: ResponsesRequest) -> None:
    """OpenAI's Responses API (what Codex CLI speaks), held and charged as chat completions
    are: the estimate is `input` and `instructions` plus `max_output_tokens`; the charge is
    the answer's `usage` (a stream's, from its `response.completed` event), the output
    counted locally when it has none. Answers carry `x-tollhouse-cost-micros`; streams end
    with the comment `: x-tollhouse-cost-micros=<n>`."""


@router.post(
    "/v1/messages",
    response_model=MessageObject,
    responses={**_MESSAGES_PROBLEMS, 200: {"content": _MESSAGES_STREAM}},
)
async def messages(body: MessagesRequest) -> None:
    """Anthropic's Messages API (what Claude Code and the `anthropic` SDK speak), for models
    on an `anthropic` upstream; the key in `x-api-key` or `Authorization: Bearer`,
    `anthropic-version` and `anthropic-beta` passed on. Held and charged as chat completions
    are: the estimate is `messages` and `system` plus `max_tokens`; the charge is the
    answer's `usage` (a stream's, from `message_start` and the last `message_delta`). Errors
    in Anthropic's shape. Answers carry `x-tollhouse-cost-micros`; streams end with the
    comment `: x-tollhouse-cost-micros=<n>`."""


@router.post(
    "/v1/messages/count_tokens",
    response_model=TokenCount,
    responses=problems.responses(400, 401, 403, 404, 413, 422, anthropic_shape=True),
)
async def count_tokens(body: CountTokensRequest) -> None:
    """Anthropic's token count, answered by tollhouse with the model's tokenizer (an
    estimate: exact counts come with each call's usage). The key must be allowed the model;
    nothing is held, limited or charged."""


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
