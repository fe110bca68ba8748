"""The OpenAPI document and the pages over it, from the running server.

Story: a developer opens `/docs` on a machine without internet: the page and every script and
style it loads come from tollhouse itself. "Authorize" takes an API key because the document
declares the bearer scheme; every operation lists the problems it answers, as problem+json
(the gateway's in OpenAI's shape); the gateway routes are there with their request and answer
shapes, though the server dispatches them before any routing. A method a path does not take
is answered 405 with every method it does take in `Allow`.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.routing import Route
from tests.e2e.conftest import Stack
from tests.e2e.test_control_api import PROBLEM_JSON, raw

from tollhouse.api.app import create_app
from tollhouse.api.routes.gateway import ROUTE_BY_PATH

GATEWAY_PATHS = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/images/generations",
    "/v1/audio/speech",
    "/v1/responses",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/moderations",
    "/v1/models",
]
ANTHROPIC_PATHS = ["/v1/messages", "/v1/messages/count_tokens"]
"""Anthropic's routes: their errors in Anthropic's shape (`AnthropicProblem`)."""
UNAUTHENTICATED_PATHS = {"/health", "/healthz", "/ready", "/v1/payments/stripe/webhook"}
"""Paths without an API key: the probes, and Stripe's webhook (Stripe signs it instead)."""
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)
"""A reference with a scheme (`https:`, `data:`) or protocol-relative: not served here."""


async def document(stack: Stack) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    ]


def referenced(page: str) -> list[str]:
    """Every URL a docs page loads: `src`, `href`, Swagger UI's `url:`, ReDoc's `spec-url`."""
    return re.findall(r"""(?:src|href|spec-url)="([^"]+)"|url: ?'([^']+)'""", page)


class TestDocsOffline:
    @pytest.mark.parametrize("page", ["/docs", "/redoc"])
    async def test_page_loads_only_what_the_server_serves(self, stack: Stack, page: str) -> None:
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            html = await http.get(page)
            assert html.status_code == 200
            urls = [a or b for a, b in referenced(html.text)]
            assert len(urls) >= 3, urls  # script, icon, document (and Swagger UI's style)
            for url in urls:
                assert not EXTERNAL.match(url), f"{page} loads {url} from elsewhere"
                asset = await http.get(url)
                assert asset.status_code == 200, url
                assert asset.content, url
        scripts = [url for url in urls if url.endswith(".js")]
        assert scripts and all(url.startswith("/docs/assets/") for url in scripts)

    async def test_swagger_ui_script_is_the_real_bundle(self, stack: Stack) -> None:
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            script = await http.get("/docs/assets/swagger-ui-bundle.js")
        assert "javascript" in script.headers["content-type"]
        assert "SwaggerUIBundle" in script.text


class TestDocument:
    async def test_served_document_is_the_apps(self, stack: Stack) -> None:
        assert await document(stack) == create_app(stack.runtime).openapi()

    async def test_bearer_scheme_is_declared_and_required_by_v1(self, stack: Stack) -> None:
        doc = await document(stack)
        assert doc["components"]["securitySchemes"]["bearer"] == {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "th_<env>_<random>",
            "description": "A tollhouse API key: `Authorization: Bearer th_...`.",
        }
        for method, path, operation in operations(doc):
            expected = [] if path in UNAUTHENTICATED_PATHS else [{"bearer": []}]
            assert operation.get("security", []) == expected, (method, path)

    async def test_every_operation_documents_its_problems(self, stack: Stack) -> None:
        doc = await document(stack)
        for method, path, operation in operations(doc):
            responses = operation["responses"]
            has_input = "parameters" in operation or "requestBody" in operation
            required = {"401", "403"} if operation.get("security") else set()
            assert required | ({"422"} if has_input else set()) <= set(responses), (method, path)
            gateway = path in GATEWAY_PATHS or path in ANTHROPIC_PATHS
            media_type = "application/json" if gateway else PROBLEM_JSON
            problem = "GatewayProblem" if gateway else "Problem"
            if path in ANTHROPIC_PATHS:
                problem = "AnthropicProblem"
            for status, response in responses.items():
                if status[0] in "45" and status != "4XX":
                    assert response["content"] == {
                        media_type: {"schema": {"$ref": f"#/components/schemas/{problem}"}}
                    }, (method, path, status)
        assert "HTTPValidationError" not in doc["components"]["schemas"]

    async def test_a_replayed_create_documents_its_200(self, stack: Stack) -> None:
        """A create (201) keyed by the body's `idempotency_key` answers a replay 200 with the
        first result: the document says so, with the 201's schema (the contract test found
        the grant's replay undocumented)."""
        doc = await document(stack)
        keyed = []
        for method, path, operation in operations(doc):
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if "201" not in operation["responses"] or body is None:
                continue
            ref = body["schema"].get("$ref", "").rsplit("/", 1)[-1]
            properties = doc["components"]["schemas"].get(ref, body["schema"]).get("properties")
            if "idempotency_key" not in (properties or {}):
                continue
            keyed.append(path)
            created, replayed = (operation["responses"][s]["content"] for s in ("201", "200"))
            assert replayed == created, (method, path)
        assert len(keyed) >= 6, keyed

    async def test_problem_schema_names_the_rfc_9457_members(self, stack: Stack) -> None:
        schemas = (await document(stack))["components"]["schemas"]
        assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail"}
        assert "error" in schemas["GatewayProblem"]["required"]

    async def test_gateway_routes_are_documented_with_their_shapes(self, stack: Stack) -> None:
        paths = (await document(stack))["paths"]
        for path in GATEWAY_PATHS + ANTHROPIC_PATHS:
            method = "get" if path == "/v1/models" else "post"
            operation = paths[path][method]
            assert operation["tags"] == ["gateway"]
            assert operation["responses"]["200"]["content"], path
            if method == "post":
                upload = path.startswith("/v1/audio/") and path != "/v1/audio/speech"
                media = "multipart/form-data" if upload else "application/json"
                body = operation["requestBody"]["content"][media]["schema"]
                assert body["$ref"].startswith("#/components/schemas/"), path
        speech = paths["/v1/audio/speech"]["post"]["responses"]["200"]["content"]
        assert list(speech) == ["audio/*"]
        chat = paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
        assert set(chat) == {"application/json", "text/event-stream"}

    async def test_gateway_posts_stay_off_fastapi_routing(self, stack: Stack) -> None:
        """Documenting them mounts nothing: the app's only routes at the gateway's POST paths
        are the plain Starlette ones that `TollhouseApp` dispatches around."""
        app = create_app(stack.runtime)
        for route in app.router.routes:
            if isinstance(route, Route) and route.path in ROUTE_BY_PATH:
                assert type(route) is Route, route


class TestMethodNotAllowed:
    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("DELETE", "/v1/customers", "GET, POST"),
            ("PATCH", "/v1/customers/cus_x/subscription", "GET, PUT"),
            ("PUT", "/v1/keys/key_x", "DELETE, GET"),
            ("POST", "/health", "GET"),
        ],
    )
    async def test_control_405_names_every_allowed_method(
        self, stack: Stack, method: str, path: str, allow: str
    ) -> None:
        response = await raw(stack, stack.operator_key, method, path)
        assert response.status_code == 405
        assert response.headers["allow"] == allow
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"].endswith("/method-not-allowed")

    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [("GET", "/v1/chat/completions", "POST"), ("POST", "/v1/models", "GET, HEAD")],
    )
    async def test_gateway_405_carries_allow_in_openai_shape(
        self, stack: Stack, method: str, path: str, allow: str
    ) -> None:
        response = await raw(stack, stack.operator_key, method, path)
        assert response.status_code == 405
        assert response.headers["allow"] == allow
        assert response.json()["error"]["code"] == "method-not-allowed"


class TestBearer:
    @pytest.mark.parametrize("authorization", ["Basic dTpw", "Bearer", "th_live_nobearer"])
    async def test_other_schemes_are_401_problem_not_fastapis_403(
        self, stack: Stack, authorization: str
    ) -> None:
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            response = await http.get("/v1/catalog", headers={"Authorization": authorization})
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["type"].endswith("/unauthenticated")
