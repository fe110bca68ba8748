"""A very fast fake OpenAI-compatible upstream for gateway benchmarks.

Raw asyncio (``asyncio.Protocol``, uvloop when installed), HTTP/1.1 keep-alive, no framework:
every answer is a pre-built byte string, so the upstream costs a few microseconds per request and
the benchmark measures the server under test, not this one.

Routes:
    POST /v1/chat/completions   a fixed small completion with a ``usage`` block
                                (prompt_tokens, completion_tokens, total_tokens); when the body
                                contains ``"stream": true`` an ``text/event-stream`` answer in
                                chunked transfer encoding: a few ``data: {chunk}`` lines, a final
                                usage chunk (``choices: []`` + ``usage``, as OpenAI sends with
                                ``stream_options.include_usage``) and ``data: [DONE]``.
    POST /v1/completions        same as chat (legacy shape is not modelled).
    POST /v1/embeddings         one small embedding with ``usage`` (prompt_tokens, total_tokens).
    GET  /v1/models             the model list (``bench-model``).
    GET  /health                ``{"status":"ok"}`` (readiness probe).
    anything else               404 with an OpenAI-style error body.

Request bodies are read by ``Content-Length`` or ``Transfer-Encoding: chunked``; pipelined
requests on one connection are answered in order.

Usage::

    python bench/fake_upstream.py --port 9100 [--host 127.0.0.1] [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
from typing import Final

MODEL: Final = "bench-model"
PROMPT_TOKENS: Final = 12
COMPLETION_TOKENS: Final = 8
STREAM_RE: Final = re.compile(rb'"stream"\s*:\s*true')
MAX_HEADER_BYTES: Final = 64 * 1024
MAX_BODY_BYTES: Final = 64 * 1024 * 1024


def _usage(prompt: int = PROMPT_TOKENS, completion: int = COMPLETION_TOKENS) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _response(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\n"
        b"Content-Type: " + content_type + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Server: fake-upstream\r\n"
        b"\r\n" + body
    )


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHAT_BODY: Final = _dumps(
    {
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion",
        "created": 1767225600,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! This is a benchmark answer."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(),
    }
)

_STREAM_PIECES: Final = ["Hello", "! This is", " a benchmark", " answer."]


def _stream_events() -> list[bytes]:
    base = {
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
    }
    events: list[bytes] = []
    first = dict(
        base,
        choices=[
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    )
    events.append(_dumps(first))
    for piece in _STREAM_PIECES:
        events.append(
            _dumps(
                dict(
                    base,
                    choices=[
                        {
                            "index": 0,
                            "delta": {"content": piece},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                )
            )
        )
    events.append(
        _dumps(
            dict(
                base, choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
            )
        )
    )
    events.append(_dumps(dict(base, choices=[], usage=_usage())))
    return [b"data: " + e + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


STREAM_RESPONSE: Final = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Server: fake-upstream\r\n"
    b"\r\n" + b"".join(_chunk(e) for e in _stream_events()) + b"0\r\n\r\n"
)

CHAT_RESPONSE: Final = _response("200 OK", CHAT_BODY)
EMBEDDINGS_RESPONSE: Final = _response(
    "200 OK",
    _dumps(
        {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": 0,
                    "embedding": [
                        0.0023,
                        -0.0093,
                        0.0158,
                        -0.0041,
                        0.0127,
                        0.0031,
                        -0.0088,
                        0.0042,
                    ],
                }
            ],
            "model": MODEL,
            "usage": {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS},
        }
    ),
)
MODELS_RESPONSE: Final = _response(
    "200 OK",
    _dumps(
        {
            "object": "list",
            "data": [{"id": MODEL, "object": "model", "created": 1767225600, "owned_by": "bench"}],
        }
    ),
)
HEALTH_RESPONSE: Final = _response("200 OK", b'{"status":"ok"}')


def _error(status: str, message: str, code: str) -> bytes:
    return _response(
        status,
        _dumps(
            {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": code,
                }
            }
        ),
    )


NOT_FOUND: Final = _error("404 Not Found", "Unknown route", "not_found")
METHOD_NOT_ALLOWED: Final = _error(
    "405 Method Not Allowed", "Method not allowed", "method_not_allowed"
)
BAD_REQUEST: Final = _error("400 Bad Request", "Malformed HTTP request", "bad_request")

POST_ROUTES: Final = {
    b"/v1/chat/completions": CHAT_RESPONSE,
    b"/v1/completions": CHAT_RESPONSE,
    b"/v1/embeddings": EMBEDDINGS_RESPONSE,
}
GET_ROUTES: Final = {
    b"/v1/models": MODELS_RESPONSE,
    b"/health": HEALTH_RESPONSE,
    b"/": HEALTH_RESPONSE,
}
STREAMABLE: Final = frozenset({b"/v1/chat/completions", b"/v1/completions"})


class UpstreamProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: parse requests from the buffer, answer each in order."""

    __slots__ = ("buf", "latency", "loop", "transport")

    def __init__(self, latency: float) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.latency = latency
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; only write/close are used.
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.buf:
            self.buf += data
            data = bytes(self.buf)
            self.buf.clear()
        out: list[bytes] = []
        close = False
        pos = 0
        n = len(data)
        while pos < n:
            parsed = _parse_one(data, pos)
            if parsed is None:
                if n - pos > MAX_HEADER_BYTES + MAX_BODY_BYTES:
                    out.append(BAD_REQUEST)
                    close = True
                else:
                    self.buf += data[pos:]
                break
            response, close, pos = parsed
            out.append(response)
            if close:
                break
        if out and self.transport is not None:
            payload = out[0] if len(out) == 1 else b"".join(out)
            if self.latency > 0:
                self.loop.call_later(self.latency, self._send, payload, close)
            else:
                self._send(payload, close)

    def _send(self, payload: bytes, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(payload)
        if close:
            self.transport.close()


def _parse_one(data: bytes, start: int) -> tuple[bytes, bool, int] | None:
    """Answer the request that begins at ``data[start]``.

    Returns (response bytes, close the connection, position after the request), or None when
    the request is not complete yet. A malformed request is answered 400 and closes.
    """
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        if len(data) - start > MAX_HEADER_BYTES:
            return BAD_REQUEST, True, len(data)
        return None
    line_end = data.find(b"\r\n", start, end + 2)
    parts = data[start:line_end].split(b" ")
    if len(parts) != 3:
        return BAD_REQUEST, True, len(data)
    method, target, version = parts
    headers = data[line_end : end + 2].lower()
    body_start = end + 4
    # Body framing: chunked wins over Content-Length (RFC 9112 6.3).
    i = headers.find(b"\r\ntransfer-encoding:")
    if i >= 0 and b"chunked" in headers[i : headers.find(b"\r\n", i + 2)]:
        try:
            decoded = _dechunk(data, body_start)
        except ValueError:
            return BAD_REQUEST, True, len(data)
        if decoded is None:
            return None
        body, after = decoded
    else:
        length = 0
        i = headers.find(b"\r\ncontent-length:")
        if i >= 0:
            try:
                length = int(headers[i + 17 : headers.find(b"\r\n", i + 17)])
            except ValueError:
                return BAD_REQUEST, True, len(data)
            if length < 0 or length > MAX_BODY_BYTES:
                return BAD_REQUEST, True, len(data)
        after = body_start + length
        if len(data) < after:
            return None
        body = data[body_start:after]
    if version == b"HTTP/1.1":
        close = b"\r\nconnection: close" in headers
    else:
        close = b"\r\nconnection: keep-alive" not in headers
    q = target.find(b"?")
    path = target if q < 0 else target[:q]
    if method == b"POST":
        response = POST_ROUTES.get(path)
        if response is None:
            return (METHOD_NOT_ALLOWED if path in GET_ROUTES else NOT_FOUND), close, after
        if path in STREAMABLE and STREAM_RE.search(body) is not None:
            return STREAM_RESPONSE, close, after
        return response, close, after
    if method == b"GET" or method == b"HEAD":
        response = GET_ROUTES.get(path)
        if response is None:
            return (METHOD_NOT_ALLOWED if path in POST_ROUTES else NOT_FOUND), close, after
        return response, close, after
    return METHOD_NOT_ALLOWED, close, after


def _dechunk(buf: bytes, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body beginning at ``start``.

    Returns (body, position after the body and its trailers), or None when incomplete.
    Raises ValueError when malformed.
    """
    pos = start
    body = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_field = buf[pos:eol].split(b";", 1)[0].strip()
        size = int(size_field, 16)  # ValueError when malformed
        pos = eol + 2
        if size == 0:
            # Trailers (ignored) end with an empty line.
            trailer_end = buf.find(b"\r\n\r\n", pos - 2)
            if trailer_end < 0:
                return None
            return bytes(body), trailer_end + 4
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos : pos + size]
        pos += size + 2
        if len(body) > MAX_BODY_BYTES:
            raise ValueError("chunked body too large")


async def serve(host: str, port: int, latency_ms: float) -> None:
    """Listen until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    latency = latency_ms / 1000.0
    server = await loop.create_server(
        lambda: UpstreamProtocol(latency), host, port, reuse_address=True, backlog=4096
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake upstream listening on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="delay every answer by this many milliseconds (default 0)",
    )
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    runner(serve(args.host, args.port, args.latency_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
