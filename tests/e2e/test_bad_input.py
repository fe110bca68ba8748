"""Bad input is refused with 422 at the edge, never a 500, and changes nothing stored.

Story: clients send strings no database keeps: a NUL (PostgreSQL refuses U+0000 in text) and a
lone surrogate (`"\\ud800"` is valid JSON, but no UTF-8 encodes it), in a path id, a query
parameter, a customer's name, an idempotency key, a usage event, a gateway call; and values of
the wrong JSON type (`0` for a boolean, `true` for an integer). Each is refused with 422
`invalid-input` naming where it was, on a SQLite file and on PostgreSQL, and the database holds
exactly what it held before.

`test_every_string_of_every_route_is_guarded` walks the OpenAPI document: for every operation
it puts each bad string in each string parameter and each string (member name or value) of a
request body that is otherwise valid.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import inspect, text
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import Stack, running_stack
from tests.support.upstream import FakeUpstream

from tollhouse.api.app import create_app
from tollhouse.errors import PROBLEM_BASE_URI
from tollhouse.gateway.call import ROUTES

INVALID_INPUT = PROBLEM_BASE_URI + "invalid-input"
BAD = {"nul": "\x00", "surrogate": "\ud800"}
"""The strings refused: as JSON they are `"\\u0000"` and `"\\ud800"`."""
IN_URL = {"nul": "%00", "surrogate": "%ED%A0%80"}
"""The same in a URL: percent-encoded bytes (a surrogate only as its CESU-8 bytes)."""
MSG = {"nul": "contains a NUL character (U+0000)", "surrogate": "is not valid UTF-8 text"}
MSG_JSON = {"nul": MSG["nul"], "surrogate": "contains a lone surrogate (U+D800 to U+DFFF)"}
MEMBER_NAME = "KEY"
"""A `loc` step standing for a member name (the name itself is the bad string)."""
JSON = {"content-type": "application/json"}


@pytest.fixture(params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakeUpstream
) -> AsyncIterator[Stack]:
    url = None if request.param == "sqlite" else await create_postgres_database()
    try:
        async with running_stack(tmp_path, upstream, database_url=url) as running:
            yield running
    finally:
        if url is not None:
            await drop_postgres_database(url)


@pytest.fixture(params=sorted(BAD))
def bad(request: pytest.FixtureRequest) -> str:
    """The kind of bad string: `nul` or `surrogate`."""
    return str(request.param)


def encoded(body: object) -> bytes:
    """JSON as clients send it, non-ASCII escaped (`json.dumps` escapes a lone surrogate)."""
    return json.dumps(body).encode()


async def stored(stack: Stack) -> dict[str, list[str]]:
    """Every row of every table, once background writes are done (`last_used_at` aside: the
    operator key's use is recorded)."""
    await stack.runtime.drain()
    snapshot: dict[str, list[str]] = {}
    async with stack.runtime.db.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        for name in names:
            rows = (await conn.execute(text(f'SELECT * FROM "{name}"'))).mappings()
            snapshot[name] = sorted(
                repr(sorted((k, v) for k, v in row.items() if k != "last_used_at")) for row in rows
            )
    return snapshot


def assert_refused(response: httpx.Response, loc: str, msg: str) -> None:
    assert response.status_code == 422, (response.status_code, response.text)
    problem = response.json()
    assert problem["type"] == INVALID_INPUT
    assert problem["errors"] == [{"loc": loc, "msg": msg}]


class TestStrings:
    async def test_path_id(self, stack: Stack, bad: str) -> None:
        before = await stored(stack)
        response = await stack.operator.client.delete(f"/v1/keys/key_{IN_URL[bad]}")
        assert_refused(response, "path", MSG[bad])
        assert await stored(stack) == before

    async def test_query_parameter(self, stack: Stack, bad: str) -> None:
        response = await stack.operator.client.get(f"/v1/customers?after=cus_{IN_URL[bad]}")
        assert_refused(response, "query.after", MSG[bad])

    async def test_customer_name(self, stack: Stack, bad: str) -> None:
        before = await stored(stack)
        body = encoded({"name": f"Ada{BAD[bad]}"})
        response = await stack.operator.client.post("/v1/customers", content=body, headers=JSON)
        assert_refused(response, "body.name", MSG_JSON[bad])
        assert await stored(stack) == before

    async def test_grant_idempotency_key(self, stack: Stack, bad: str) -> None:
        customer_id, _ = await stack.customer(credits_micros=0)
        before = await stored(stack)
        body = encoded({"amount_micros": 5, "idempotency_key": f"g{BAD[bad]}"})
        url = f"/v1/customers/{customer_id}/credits/grants"
        response = await stack.operator.client.post(url, content=body, headers=JSON)
        assert_refused(response, "body.idempotency_key", MSG_JSON[bad])
        assert await stored(stack) == before

    @pytest.mark.parametrize("field", ["id", "meter", "model", "properties", MEMBER_NAME])
    async def test_usage_event_field(self, stack: Stack, bad: str, field: str) -> None:
        customer_id, _ = await stack.customer()
        before = await stored(stack)
        event: dict[str, Any] = {"id": "e1", "customer_id": customer_id, "meter": "images"}
        event |= {"value": 1, "model": "test-chat", "properties": {"size": "1024x1024"}}
        loc = f"body.events.0.{field}"
        if field == "properties":
            event["properties"]["size"] += BAD[bad]
            loc += ".size"
        elif field == MEMBER_NAME:
            event["properties"][f"size{BAD[bad]}"] = event["properties"].pop("size")
            loc = "body.events.0.properties"
        else:
            event[field] += BAD[bad]
        body = encoded({"events": [event]})
        response = await stack.operator.client.post("/v1/usage/events", content=body, headers=JSON)
        msg = MSG_JSON[bad] if field != MEMBER_NAME else "a member name " + MSG_JSON[bad]
        assert_refused(response, loc, msg)
        assert await stored(stack) == before

    async def test_gateway_call_through_openai(self, stack: Stack) -> None:
        """The real `openai` client sends a NUL as `\\u0000` (it cannot encode a surrogate)."""
        _, key = await stack.customer()
        before = await stored(stack)
        client = openai.AsyncOpenAI(api_key=key, base_url=stack.base_url + "/v1", max_retries=0)
        with pytest.raises(openai.UnprocessableEntityError) as refused:
            await client.chat.completions.create(
                model="test-chat", messages=[{"role": "user", "content": "Say\x00hello"}]
            )
        assert refused.value.code == "invalid-input"
        assert refused.value.response.json()["errors"] == [
            {"loc": "body.messages.0.content", "msg": MSG_JSON["nul"]}
        ]
        assert stack.upstream.requests == []
        assert await stored(stack) == before

    @pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.path)
    async def test_gateway_body(self, stack: Stack, bad: str, route: Any) -> None:
        """Every gateway route, OpenAI-shaped (a surrogate was a 400 "not valid JSON"), or
        Anthropic-shaped on Anthropic's (the problem's type as `problem_type`)."""
        _, key = await stack.customer()
        body = encoded({"model": f"test-chat{BAD[bad]}", "input": "hi"})
        headers = {**JSON, "authorization": f"Bearer {key}"}
        response = await stack.operator.client.post(route.path, content=body, headers=headers)
        answer = response.json()
        if route.protocol == "anthropic":
            assert (response.status_code, answer["type"]) == (422, "error")
            assert answer["error"]["type"] == "invalid_request_error"
            answer["type"] = answer.pop("problem_type")
            response = httpx.Response(422, json=answer)
        else:
            assert answer["error"]["code"] == "invalid-input"
        assert_refused(response, "body.model", MSG_JSON[bad])
        assert stack.upstream.requests == []

    async def test_every_string_of_every_route_is_guarded(self, stack: Stack) -> None:
        wrong = []
        for case in string_cases(create_app().openapi()):
            for kind in BAD:
                response = await stack.operator.client.request(
                    case.method, case.url(kind), content=case.body(kind), headers=JSON
                )
                if response.status_code != 422 or response.json()["errors"] != [case.error(kind)]:
                    wrong.append((case.method, case.url(kind), case.loc, response.text))
        assert wrong == []


class TestStrictTypes:
    async def test_cancel_with_zero_for_false_is_refused(self, stack: Stack) -> None:
        """`0` used to mean false: the subscription was canceled now instead of at the end."""
        customer_id, _ = await stack.customer(plan="pro")
        before = await stored(stack)
        for flag in (0, "false", None):
            response = await stack.operator.client.post(
                f"/v1/subscription/cancel?customer_id={customer_id}", json={"at_period_end": flag}
            )
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0]["loc"] == "body.at_period_end"
        assert await stored(stack) == before
        shown = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/subscription")
        assert (shown["status"], shown["cancel_at_period_end"]) == ("active", False)

    @pytest.mark.parametrize("rpm", [True, 60.0, "60"])
    async def test_key_rpm_must_be_an_integer(self, stack: Stack, rpm: object) -> None:
        customer_id, _ = await stack.customer()
        before = await stored(stack)
        response = await stack.operator.client.post(
            f"/v1/customers/{customer_id}/keys", json={"rate_limit_rpm": rpm}
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == "body.rate_limit_rpm"
        assert await stored(stack) == before

    async def test_payment_method_must_be_a_boolean(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer()
        response = await stack.operator.client.put(
            f"/v1/customers/{customer_id}/subscription/payment-method",
            json={"has_payment_method": 1},
        )
        assert response.status_code == 422, response.text

    async def test_grant_expiry_needs_a_time_zone(self, stack: Stack) -> None:
        """A naive expiry was compared with an aware clock: a 500."""
        customer_id, _ = await stack.customer(credits_micros=0)
        before = await stored(stack)
        response = await stack.operator.client.post(
            f"/v1/customers/{customer_id}/credits/grants",
            json={"amount_micros": 5, "idempotency_key": "g", "expires_at": "2099-01-01T00:00:00"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == "body.expires_at"
        assert await stored(stack) == before

    async def test_timestamps_are_iso_strings_with_an_offset(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer(credits_micros=0)
        granted = await stack.operator.ok(
            "POST",
            f"/v1/customers/{customer_id}/credits/grants",
            json={
                "amount_micros": 5,
                "idempotency_key": "g",
                "expires_at": "2099-01-01T02:00+02:00",
            },
        )
        assert datetime.fromisoformat(granted["expires_at"]) == datetime(2099, 1, 1, tzinfo=UTC)


class TestBounds:
    """Values of the right type that the stores or Python's arithmetic cannot take."""

    @pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
    @pytest.mark.parametrize("where", ["grant", "key", "event", "usage", "key usage"])
    async def test_a_timestamp_past_the_calendar_is_refused(
        self, stack: Stack, moment: str, where: str
    ) -> None:
        """Its offset takes it past the calendar's end (or start): it was a 500."""
        customer_id, _ = await stack.customer()
        keys = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/keys")
        event = {"id": "e", "customer_id": customer_id, "meter": "images", "value": 1}
        method, url, body, loc = {
            "grant": (
                "POST",
                f"/v1/customers/{customer_id}/credits/grants",
                {"amount_micros": 1, "idempotency_key": "g", "expires_at": moment},
                "body.expires_at",
            ),
            "key": (
                "POST",
                f"/v1/customers/{customer_id}/keys",
                {"expires_at": moment},
                "body.expires_at",
            ),
            "event": (
                "POST",
                "/v1/usage/events",
                {"events": [{**event, "occurred_at": moment}]},
                "body.events.0.occurred_at",
            ),
            "usage": ("GET", f"/v1/usage?customer_id={customer_id}", None, "query.end"),
            "key usage": ("GET", f"/v1/keys/{keys[0]['id']}/usage", None, "query.start"),
        }[where]
        params = {loc.removeprefix("query."): moment} if loc.startswith("query.") else None
        before = await stored(stack)
        response = await stack.operator.client.request(method, url, json=body, params=params)
        assert response.status_code == 422, response.text
        assert [e["loc"] for e in response.json()["errors"]] == [loc]
        assert await stored(stack) == before

    @pytest.mark.parametrize(
        "url", ["/v1/customers/{}/transactions", "/v1/subscription/history?customer_id={}"]
    )
    async def test_a_row_id_beyond_64_bits_is_refused(self, stack: Stack, url: str) -> None:
        """It was passed to the database, which refused it: a 500."""
        customer_id, _ = await stack.customer()
        page = url.format(customer_id) + ("&" if "?" in url else "?") + f"before_id={2**63}"
        response = await stack.operator.client.get(page)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == "query.before_id"


# The OpenAPI walk --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad string in one place of one operation."""

    method: str
    path: str
    """The template; its parameters are filled with `x`, or the bad string for `where`."""
    where: str
    """`path`, `query.<name>` or `body`."""
    loc: tuple[str | int, ...]
    """In the body: where the bad string goes (`MEMBER_NAME` last: as that member's name)."""
    body_template: Any

    def url(self, kind: str) -> str:
        path = self.path
        for name in _path_parameters(path):
            path = path.replace(
                "{" + name + "}", "x" + (IN_URL[kind] if self.where == "path" else "")
            )
        if self.where.startswith("query."):
            path += f"?{self.where.removeprefix('query.')}=x{IN_URL[kind]}"
        return path

    def body(self, kind: str) -> bytes | None:
        if self.body_template is None:
            return None
        body = json.loads(json.dumps(self.body_template))
        if self.where == "body":
            *parents, last = self.loc
            container = body
            for step in parents:
                container = container[step]
            if last == MEMBER_NAME:
                container["k" + BAD[kind]] = "v"
            else:
                container[last] += BAD[kind]
        return encoded(body)

    def error(self, kind: str) -> dict[str, str]:
        if self.where != "body":
            return {"loc": self.where, "msg": MSG[kind]}
        steps = [str(step) for step in self.loc if step != MEMBER_NAME]
        member = "a member name " if self.loc[-1] == MEMBER_NAME else ""
        return {"loc": ".".join(["body", *steps]), "msg": member + MSG_JSON[kind]}


def _path_parameters(path: str) -> list[str]:
    """The `{name}`s of a path template, also within a segment (`/v1/invoices/{id}.pdf`)."""
    return re.findall(r"\{(\w+)\}", path)


def string_cases(doc: dict[str, Any]) -> Iterator[Case]:
    """A case per string parameter and per string of the JSON request body of every operation
    (a multipart upload's fields are not JSON: `gateway.audio` reads them, and stores none)."""
    schemas = doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            schema = None
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
            template = example(schema, schemas) if schema is not None else None
            if _path_parameters(path):
                yield Case(method.upper(), path, "path", (), template)
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and _has_string(parameter["schema"], schemas):
                    where = "query." + parameter["name"]
                    yield Case(method.upper(), path, where, (), template)
            for loc in string_locs(schema, schemas, ()) if schema is not None else ():
                yield Case(method.upper(), path, "body", loc, template)


def _resolved(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """`$ref` followed; of an `anyOf`, its first branch that is not null."""
    while True:
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in schema:
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        else:
            return schema


def _has_string(schema: dict[str, Any], schemas: dict[str, Any]) -> bool:
    schema = _resolved(schema, schemas)
    if schema.get("type") == "array":
        return _has_string(schema["items"], schemas)
    return schema.get("type") == "string"


SAMPLES: dict[str, object] = {
    "date-time": "2099-01-01T00:00:00Z",
    "timezone": "UTC",
    "model": "test-chat",
    "meter": "images",
    "plan": "pro",
}
"""Valid values of strings whose value is checked (by format, or by member name)."""


def example(schema: dict[str, Any], schemas: dict[str, Any], name: str = "") -> Any:
    """A valid value with every optional member present."""
    schema = _resolved(schema, schemas)
    kind = schema.get("type")
    if kind == "object":
        if "properties" not in schema:
            return {"k": "v"}
        return {key: example(sub, schemas, key) for key, sub in schema["properties"].items()}
    if kind == "array":
        return [example(schema["items"], schemas, name)]
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "string":
        return SAMPLES.get(schema.get("format", ""), SAMPLES.get(name, "x"))
    if kind == "integer":
        return max(1, schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1)
    if kind == "boolean":
        return True
    raise AssertionError(f"no example for {schema}")


def string_locs(
    schema: dict[str, Any], schemas: dict[str, Any], loc: tuple[str | int, ...]
) -> Iterator[tuple[str | int, ...]]:
    """Where a body of `schema` (as `example` makes it) has strings and member names."""
    schema = _resolved(schema, schemas)
    kind = schema.get("type")
    if kind == "object":
        if "properties" not in schema:
            yield (*loc, "k")
            yield (*loc, MEMBER_NAME)
            return
        yield (*loc, MEMBER_NAME)
        for key, sub in schema["properties"].items():
            yield from string_locs(sub, schemas, (*loc, key))
    elif kind == "array":
        yield from string_locs(schema["items"], schemas, (*loc, 0))
    elif kind == "string":
        yield loc
