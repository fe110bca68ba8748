"""The edge's string checks (`api.middleware.body_error`) and problem rendering that never
fails on what an error echoes (`api.problems.problem_response`)."""

from __future__ import annotations

import json

import orjson
import pytest

from tollhouse.api.middleware import NUL, SURROGATE, body_error
from tollhouse.api.problems import problem_response
from tollhouse.errors import InvalidInput


class TestBodyError:
    @pytest.mark.parametrize(
        "body",
        [
            b'{"name": "Ada"}',
            b'{"name": "caf\\u00e9 \\ud83d\\ude00"}',  # escaped, with a surrogate pair
            '{"name": "café 😀 한"}'.encode(),  # raw UTF-8 (Hangul starts with byte 0xED)
            b'{"name": "\\\\u0000"}',  # an escaped backslash, then the text u0000
            b"[" * 100_000 + b'"\\u0000"' + b"]" * 100_000,  # too deep for Python's json
            b'{"name": "\\u0000"',  # not JSON: the app answers it as it does
            b"",
        ],
    )
    def test_good_or_unparsable_bodies_pass(self, body: bytes) -> None:
        assert body_error(body) is None

    @pytest.mark.parametrize(
        ("body", "found"),
        [
            (b'{"name": "a\\u0000"}', ("body.name", NUL)),
            (b'{"name": "a\\uD800"}', ("body.name", SURROGATE)),
            (b'{"a": [1, {"b": ["ok", "\\udfff"]}]}', ("body.a.1.b.1", SURROGATE)),
            (b'{"a": {"k\\u0000": 1}}', ("body.a", "a member name " + NUL)),
            (b'{"name": "\xed\xa0\x80"}', ("body.name", SURROGATE)),  # read by Python's json
            ('{"name": "\ud800"}'.encode("utf-16", "surrogatepass"), ("body.name", SURROGATE)),
            (b'{"n": 123456789012345678901234567890, "s": "\\u0000"}', ("body.s", NUL)),
        ],
    )
    def test_bad_strings_are_found(self, body: bytes, found: tuple[str, str]) -> None:
        assert json.loads(body) is not None  # what FastAPI's parser accepts
        assert body_error(body) == found

    def test_the_first_bad_string_in_document_order(self) -> None:
        body = b'[{"a": "\\u0000", "b": "\\ud800"}, "\\ud800"]'
        assert body_error(body) == ("body.0.a", NUL)


class TestProblemResponse:
    @pytest.mark.parametrize("openai_shape", [False, True])
    def test_a_lone_surrogate_in_what_is_echoed_is_replaced(self, openai_shape: bool) -> None:
        error = InvalidInput("unknown meter 'a\ud800'", errors=[{"loc": "b\udc00", "msg": "x"}])
        response = problem_response(error, instance="/v1/\ud800", openai_shape=openai_shape)
        assert response.status_code == 422
        body = orjson.loads(response.body)
        assert body["detail"] == "unknown meter 'a\ufffd'"
        assert (body["instance"], body["errors"]) == (
            "/v1/\ufffd",
            [{"loc": "b\ufffd", "msg": "x"}],
        )

    def test_an_integer_beyond_64_bits_is_rendered(self) -> None:
        response = problem_response(InvalidInput("too big", limit=2**70))
        assert orjson.loads(response.body)["limit"] == 2**70
