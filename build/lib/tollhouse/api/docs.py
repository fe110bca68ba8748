"""The API's documentation: the OpenAPI document, and Swagger UI and ReDoc served offline.

The document is FastAPI's, generated from the app's routes plus the gateway's docs-only routes
(`routes.gateway_docs`), with the problem schemas (`problems.ERROR_MODELS`) that routes'
`responses=` refer to. `/docs` (Swagger UI) and `/redoc` load their scripts and styles from
`/docs/assets`, files of the `fastapi-offline` package, so they work without internet.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tollhouse.api import problems
from tollhouse.api.routes import gateway_docs

ASSETS_URL = "/docs/assets"
ASSETS_DIR = files("fastapi_offline") / "static"
"""Swagger UI's `swagger-ui-bundle.js` and `swagger-ui.css`, ReDoc's `redoc.standalone.js`
and `favicon.png`, as `fastapi-offline` ships them."""

SWAGGER_UI_PARAMETERS = {"validatorUrl": None, "persistAuthorization": True}
"""No call to Swagger's online validator; the key typed in "Authorize" survives a reload."""


def document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of `app`: its routes, the gateway's, and the problem schemas."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=[*app.routes, *gateway_docs.router.routes],
        tags=app.openapi_tags,
    )
    _, definitions = models_json_schema(
        [(model, "serialization") for model in problems.ERROR_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions["$defs"])
    return schema


async def swagger_ui(request: Request) -> HTMLResponse:
    """`/docs`: Swagger UI over `/openapi.json`."""
    root = request.scope.get("root_path", "").rstrip("/")
    app: FastAPI = request.app
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    )


async def redoc(request: Request) -> HTMLResponse:
    """`/redoc`: ReDoc over `/openapi.json`, without Google's fonts."""
    root = request.scope.get("root_path", "").rstrip("/")
    app: FastAPI = request.app
    return get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )


def install(app: FastAPI) -> None:
    """Serve `/docs`, `/redoc` and their assets on `app` (built with `docs_url=None,
    redoc_url=None`)."""
    app.mount(ASSETS_URL, StaticFiles(directory=str(ASSETS_DIR)), name="docs-assets")
    app.add_route("/docs", swagger_ui, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
