"""The library API: `from tollhouse import ...`.

`tollhouse/__init__.py` exports the services the server runs, under a sorted `__all__`, and
imports each one only on first use, so `import tollhouse` stays light.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from types import ModuleType

import pytest

import tollhouse

LIBRARY_API = {
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "TollhouseAPIError",
    "UnprocessableEntityError",
    "Catalog",
    "Database",
    "FrozenClock",
    "KeyAuthenticator",
    "Ledger",
    "Limit",
    "RateLimiter",
    "Runtime",
    "Settings",
    "SystemClock",
    "TollhouseError",
    "Usage",
    "UsageRecorder",
    "create_app",
    "load_catalog",
    "storage_from_url",
}
"""Changing the library API is a decision: update this set with it."""

HEAVY_DEPENDENCIES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "aiohttp",
    "redis",
    "alembic",
)


def loaded_modules(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `statement`."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stdout))


class TestAll:
    def test_all_is_sorted(self) -> None:
        assert tollhouse.__all__ == sorted(tollhouse.__all__)

    def test_all_has_no_duplicates(self) -> None:
        assert len(tollhouse.__all__) == len(set(tollhouse.__all__))

    def test_all_is_the_documented_library_api(self) -> None:
        assert set(tollhouse.__all__) == LIBRARY_API

    @pytest.mark.parametrize("name", sorted(LIBRARY_API))
    def test_name_resolves_to_its_definition(self, name: str) -> None:
        value = getattr(tollhouse, name)

        home = sys.modules[value.__module__]
        assert home.__name__.startswith("tollhouse.")
        assert getattr(home, name) is value

    def test_no_public_name_is_missing_from_all(self) -> None:
        for name in tollhouse.__all__:
            getattr(tollhouse, name)

        public = {
            name
            for name in dir(tollhouse)
            if not name.startswith("_") and not isinstance(getattr(tollhouse, name), ModuleType)
        }

        assert public == set(tollhouse.__all__)

    def test_unknown_name_is_an_attribute_error(self) -> None:
        assert not hasattr(tollhouse, "Nonexistent")
        with pytest.raises(ImportError):
            from tollhouse import Nonexistent  # noqa: F401

    def test_submodules_still_import_through_the_package(self) -> None:
        from tollhouse import money

        assert money is importlib.import_module("tollhouse.money")


class TestImportCost:
    def test_importing_tollhouse_loads_no_heavy_dependency(self) -> None:
        loaded = loaded_modules("import tollhouse")

        assert "tollhouse" in loaded
        assert {m for m in loaded if m.split(".")[0] in HEAVY_DEPENDENCIES} == set()

    def test_importing_one_domain_does_not_load_the_others(self) -> None:
        loaded = loaded_modules("import tollhouse.ratelimit")

        domains = {m.split(".")[1] for m in loaded if m.startswith("tollhouse.")}
        assert domains == {"ratelimit", "errors", "clock"}

    def test_first_use_of_a_name_imports_its_module(self) -> None:
        loaded = loaded_modules("from tollhouse import create_app")

        assert {"tollhouse.api.app", "fastapi"} <= loaded

    def test_the_sdk_loads_nothing_of_the_server(self) -> None:
        loaded = loaded_modules("from tollhouse import AsyncClient, Client, TollhouseAPIError")

        assert {m for m in loaded if m.split(".")[0] in HEAVY_DEPENDENCIES} == set()
        assert {m.split(".")[1] for m in loaded if m.startswith("tollhouse.")} == {"sdk"}
