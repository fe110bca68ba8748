"""Write the SDK's models and resource classes from the server's OpenAPI document and the
method table (`routes.OPERATIONS`), so the SDK's types have one source: the routes' own
pydantic models.

    python -m tollhouse.sdk.codegen      # rewrite src/tollhouse/sdk/{models,resources}/

`tests/sdk/test_coverage.py` fails when the files on disk differ from what this writes now.
This module takes the document as an argument and imports nothing from the server; only
`main` builds the document (with the server's `create_app`).

What it writes:
- `models/<resource>.py`: a pydantic model per answer schema (the schema's name without its
  `Out` suffix, or `RENAMED`), open to members a newer server adds; a `TypedDict` per
  request object nested in a body (`UsageEstimate`); each in the module of the first
  resource that uses it.
- `resources/<resource>.py`: `<Resource>` (sync) and `Async<Resource>` with one method per
  operation: path parameters positional, query and body members keyword-only (required ones
  without default; an optional one left at None is not sent), an `idempotency_key` for
  bodies that take one (generated once per call when not given), list routes returning page
  iterators.
"""

from __future__ import annotations

import keyword
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tollhouse.sdk.routes import OPERATIONS, Operation

PACKAGE = Path(__file__).resolve().parent
RENAMED = {
    "AuthorizeOut": "Authorization",
    "ChangeOut": "PlanChange",
    "HistoryOut": "SubscriptionChange",
    "EndpointOut": "WebhookEndpoint",
    "CreatedEndpointOut": "CreatedWebhookEndpoint",
    "DeliveryOut": "WebhookDelivery",
    "DeliveryList": "WebhookDeliveryList",
    "AttemptOut": "DeliveryAttempt",
    "RecordOut": "RecordedEvents",
    "CloseOut": "PeriodClose",
    "ModelOut": "CatalogModel",
    "LineOut": "InvoiceLine",
    "tollhouse__api__routes__invoices__RefundOut": "Refund",
    "tollhouse__api__routes__payments__RefundOut": "PaymentRefund",
    "tollhouse__api__routes__subscriptions__QuotaOut": "MeterQuota",
    "tollhouse__api__routes__sessions__QuotaOut": "SessionQuota",
}
"""Schema names whose SDK name is not the name without `Out`: clearer ones, and the names
FastAPI qualifies because two route modules use the same class name."""
REF = "#/components/schemas/"
HEADER = '"""{doc}\n\nWritten by `python -m tollhouse.sdk.codegen`; do not edit."""\n\n'


def class_name(schema: str) -> str:
    """The SDK's name for a component schema.

    Raises: ValueError for a qualified name (`tollhouse__...`) `RENAMED` does not list."""
    if schema in RENAMED:
        return RENAMED[schema]
    if "__" in schema:
        raise ValueError(f"schema {schema!r} needs a name in codegen.RENAMED")
    return schema.removesuffix("Out")


@dataclass
class Module:
    """One generated module: its classes in order, and what it imports from its siblings."""

    resource: str
    classes: list[str] = field(default_factory=list)
    imports: set[tuple[str, str]] = field(default_factory=set)


class Generator:
    """Holds the document and where each schema's class lives while writing the modules."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.schemas: dict[str, Any] = document["components"]["schemas"]
        self.home: dict[str, str] = {}
        self.models: dict[str, Module] = {}
        self.route = ""
        """The operation being written (`GET /v1/...`): the first to answer a model."""

    # -- types ------------------------------------------------------------------------

    def annotation(self, schema: dict[str, Any], module: Module, *, request: bool) -> str:
        """The Python type of a JSON schema; places each referenced class in a module."""
        if "$ref" in schema:
            name = schema["$ref"].removeprefix(REF)
            self.place(name, module.resource, request=request)
            if self.home[name] != module.resource:
                module.imports.add((self.home[name], class_name(name)))
            return class_name(name)
        if "anyOf" in schema:
            parts = [self.annotation(part, module, request=request) for part in schema["anyOf"]]
            return " | ".join(dict.fromkeys(parts))
        if "enum" in schema or "const" in schema:
            values = schema.get("enum", [schema.get("const")])
            return f"Literal[{', '.join(repr(value) for value in values)}]"
        kind = schema.get("type")
        if kind == "array":
            return f"list[{self.annotation(schema.get('items', {}), module, request=request)}]"
        if kind == "object":
            values = schema.get("additionalProperties", True)
            inner = "Any" if values is True else self.annotation(values, module, request=request)
            return f"dict[str, {inner}]"
        if kind == "string":
            return "datetime" if schema.get("format") == "date-time" else "str"
        return {"integer": "int", "boolean": "bool", "number": "float", "null": "None"}.get(
            str(kind), "Any"
        )

    def place(self, name: str, resource: str, *, request: bool) -> None:
        """Write the class of schema `name` into `resource`'s module unless it has one."""
        if name in self.home:
            return
        self.home[name] = resource
        module = self.models.setdefault(resource, Module(resource))
        schema = self.schemas[name]
        required = set(schema.get("required", []))
        lines: list[str] = []
        for member, member_schema in schema.get("properties", {}).items():
            annotation = self.annotation(member_schema, module, request=request)
            if request:
                annotation = annotation if member in required else f"NotRequired[{annotation}]"
                lines.append(f"    {member}: {annotation}")
            elif member in required:
                lines.append(f"    {member}: {annotation}")
            else:
                lines.append(f"    {member}: {annotation} = {member_schema.get('default')!r}")
            if member_schema.get("description"):
                lines.append(docstring(member_schema["description"], 4))
        base = "TypedDict" if request else "Model"
        usage = (
            f"Part of the body of `{self.route}`." if request else f"Answered by `{self.route}`."
        )
        doc = schema.get("description") or usage
        module.classes.append(
            f"class {class_name(name)}({base}):\n{docstring(doc, 4)}\n" + "\n".join(lines)
        )

    # -- resources ----------------------------------------------------------------------

    def method(self, operation: Operation, module: Module, *, is_async: bool) -> str:
        """The source of one resource method."""
        spec = self.document["paths"][operation.path][operation.http_method.lower()]
        self.route = f"{operation.http_method} {operation.path}"
        positional, keywords, given, optional, docs = [], [], [], [], []
        for parameter in spec.get("parameters", []):
            name, schema = parameter["name"], parameter["schema"]
            annotation = self.annotation(schema, module, request=True)
            if parameter.get("description"):
                docs.append(f"`{name}`: {parameter['description']}")
            if parameter["in"] == "path":
                positional.append(f"{name}: str")
            elif name == "limit" and "default" in schema:
                keywords.append(f"limit: int = {schema['default']}")
                given.append("limit")
            elif parameter.get("required"):
                keywords.append(f"{python_name(name)}: {annotation}")
                given.append(name)
            else:
                keywords.append(f"{python_name(name)}: {optional_type(annotation)} = None")
                optional.append(name)
        body_members, body_given, body_optional, body_docs = self.body(spec, module)
        keywords += body_members
        docs += body_docs
        takes_key = "idempotency_key" in body_given + body_optional
        if takes_key:
            keywords.append("idempotency_key: str | None = None")
            body_given = [m for m in body_given if m != "idempotency_key"]
            body_optional = [m for m in body_optional if m != "idempotency_key"]
            docs.append(
                "`idempotency_key`: the same key again applies nothing more; default: one "
                "generated for this call (every retry sends it)."
            )
        result, returns = self.result(spec, module)
        call = [repr(operation.http_method), self.path_expression(operation.path), result]
        if given or optional:
            call.append(f"params={members_expression(given, optional)}")
        if "requestBody" in spec:
            call.append(f"json={members_expression(body_given, body_optional, key=takes_key)}")
        retryable = operation.idempotent or takes_key or operation.http_method != "POST"
        if retryable:
            call.append("retryable=True")
        call_source = f"Call[{result}]({', '.join(call)})"
        signature = ", ".join(["self", *positional, *(["*", *keywords] if keywords else [])])
        summary = spec.get("description") or spec.get("summary", "")
        doc = "\n\n".join(filter(None, [summary, f"`{self.route}`", *docs]))
        if operation.cursor is not None:
            page = "AsyncPage" if is_async else "SyncPage"
            item = returns.removeprefix("list[").removesuffix("]")
            if operation.cursor.envelope:
                item = self.envelope_item(spec, module)
            module.imports.add(("pagination", page))
            module.imports.add(("pagination", "Cursor"))
            return (
                f"    def {operation.name}({signature}) -> {page}[{item}]:\n"
                f"{docstring(doc, 8)}\n"
                f"        return {page}(self._requester, {call_source}, {operation.cursor!r})"
            )
        prefix, awaited = ("async def", "await ") if is_async else ("def", "")
        return (
            f"    {prefix} {operation.name}({signature}) -> {returns}:\n{docstring(doc, 8)}\n"
            f"        return {awaited}self._requester._request({call_source})"
        )

    def body(
        self, spec: dict[str, Any], module: Module
    ) -> tuple[list[str], list[str], list[str], list[str]]:
        """A body's members as keyword parameters, the required ones, the optional ones, and
        the description of each member that has one."""
        content = spec.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:
            return [], [], [], []
        schema = content["schema"]
        refs = [part for part in schema.get("anyOf", [schema]) if "$ref" in part]
        if not refs:
            return [], [], [], []
        target = self.schemas[refs[0]["$ref"].removeprefix(REF)]
        required = set(target.get("required", []))
        keywords, given, optional, docs = [], [], [], []
        for member, member_schema in target.get("properties", {}).items():
            annotation = self.annotation(member_schema, module, request=True)
            if member_schema.get("description") and member != "idempotency_key":
                docs.append(f"`{member}`: {member_schema['description']}")
            if member == "idempotency_key":
                given.append(member)
            elif member in required:
                keywords.append(f"{python_name(member)}: {annotation}")
                given.append(member)
            else:
                keywords.append(f"{python_name(member)}: {optional_type(annotation)} = None")
                optional.append(member)
        return keywords, given, optional, docs

    def result(self, spec: dict[str, Any], module: Module) -> tuple[str, str]:
        """What a 2xx answer decodes to, as the `Call` argument and as the return type."""
        status = next(code for code in spec["responses"] if code.startswith("2"))
        content = spec["responses"][status].get("content", {})
        if "application/json" in content and content["application/json"].get("schema"):
            annotation = self.annotation(
                content["application/json"]["schema"], module, request=False
            )
            return annotation, annotation
        if "text/html" in content:
            return "str", "str"
        if content:
            return "bytes", "bytes"
        return "None", "None"

    def envelope_item(self, spec: dict[str, Any], module: Module) -> str:
        schema = spec["responses"]["200"]["content"]["application/json"]["schema"]
        envelope = self.schemas[schema["$ref"].removeprefix(REF)]
        return self.annotation(envelope["properties"]["data"]["items"], module, request=False)

    @staticmethod
    def path_expression(template: str) -> str:
        names = [part.split("}")[0] for part in template.split("{")[1:]]
        if not names:
            return repr(template)
        return f"path({template!r}, {', '.join(f'{name}={name}' for name in names)})"


def python_name(name: str) -> str:
    return f"{name}_" if keyword.iskeyword(name) else name


def optional_type(annotation: str) -> str:
    return annotation if annotation.endswith("| None") else f"{annotation} | None"


def members_expression(given: list[str], optional: list[str], *, key: bool = False) -> str:
    """`members({...required}, optional=...)`; with `key`, the idempotency key first."""
    pairs = [f"{name!r}: {python_name(name)}" for name in given]
    if key:
        pairs.insert(0, "'idempotency_key': idempotency_key or new_idempotency_key()")
    required = ", ".join(pairs)
    rest = "".join(f", {name}={python_name(name)}" for name in optional)
    return f"members({{{required}}}{rest})"


def docstring(text: str, indent: int) -> str:
    pad = " " * indent
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip()
    paragraphs = [textwrap.fill(" ".join(p.split()), 96 - indent) for p in text.split("\n\n")]
    body = "\n\n".join(paragraphs)
    lines = body.splitlines()
    joined = "\n".join(f"{pad}{line}" if line else "" for line in lines[1:])
    return f'{pad}"""{lines[0]}' + (f"\n{joined}\n{pad}" if len(lines) > 1 else "") + '"""'


def resource_class(resource: str) -> str:
    """`webhook_endpoints` -> `WebhookEndpointsResource` (apart from the models' names)."""
    return "".join(part.title() for part in resource.split("_")) + "Resource"


def generate(document: dict[str, Any]) -> dict[str, str]:
    """The SDK's generated modules for `document`: relative path -> source (unformatted)."""
    generator = Generator(document)
    by_resource: dict[str, list[Operation]] = {}
    for operation in OPERATIONS:
        by_resource.setdefault(operation.resource, []).append(operation)
    files: dict[str, str] = {}
    for resource, operations in by_resource.items():
        module = Module(resource)
        sync = [generator.method(op, module, is_async=False) for op in operations]
        asynchronous = [generator.method(op, module, is_async=True) for op in operations]
        name = resource_class(resource)
        model_names = sorted(
            class_name(schema) for schema, home in generator.home.items() if home == resource
        )
        imports = sorted({*module.imports, *((resource, n) for n in model_names)})
        source = (
            HEADER.format(doc=f"`client.{resource}`: {name} and Async{name}.")
            + "from __future__ import annotations\n\nfrom datetime import datetime\n"
            + "from typing import Any, Literal\n\n"
            + "from tollhouse.sdk._base import (AsyncRequester, Call, Requester, members, "
            + "new_idempotency_key, path)\n"
            + "".join(_import_line(where, what) for where, what in imports)
            + f"\n\nclass {name}:\n    def __init__(self, requester: Requester) -> None:\n"
            + "        self._requester = requester\n\n"
            + "\n\n".join(sync)
            + f"\n\n\nclass Async{name}:\n"
            + "    def __init__(self, requester: AsyncRequester) -> None:\n"
            + "        self._requester = requester\n\n"
            + "\n\n".join(asynchronous)
            + "\n"
        )
        if any(operation.name == "list" for operation in operations):  # shadows the builtin
            source = re.sub(r"(?<![\w.])list\[", "builtins.list[", source).replace(
                "annotations\n", "annotations\n\nimport builtins\n", 1
            )
        files[f"resources/{resource}.py"] = source
    for resource, module in generator.models.items():
        files[f"models/{resource}.py"] = (
            HEADER.format(doc=f"Models of `client.{resource}`'s answers and requests.")
            + "from __future__ import annotations\n\nfrom datetime import datetime\n"
            + "from typing import Any, Literal, NotRequired, TypedDict\n\n"
            + "from tollhouse.sdk.models._model import Model\n"
            + "".join(
                f"from tollhouse.sdk.models.{where} import {what}\n"
                for where, what in sorted(module.imports)
                if where != "pagination"
            )
            + "\n\n"
            + "\n\n\n".join(module.classes)
            + "\n"
        )
    files["models/__init__.py"] = _index(
        "Every model of the SDK, by name.",
        ((f"models.{home}", class_name(schema)) for schema, home in generator.home.items()),
    )
    files["resources/__init__.py"] = _resources_index(list(by_resource))
    return files


def _import_line(where: str, what: str) -> str:
    origin = "pagination" if where == "pagination" else f"models.{where}"
    return f"from tollhouse.sdk.{origin} import {what}\n"


def _index(doc: str, names: Iterable[tuple[str, str]]) -> str:
    pairs = sorted(names, key=lambda pair: pair[1])
    return (
        HEADER.format(doc=doc)
        + "".join(f"from tollhouse.sdk.{where} import {what}\n" for where, what in pairs)
        + "\n__all__ = ["
        + ", ".join(repr(what) for _, what in pairs)
        + "]\n"
    )


def _resources_index(resources: list[str]) -> str:
    lines = [HEADER.format(doc="The clients' resource groups, one attribute per group.")]
    lines.append("from tollhouse.sdk._base import AsyncRequester, Requester\n")
    for resource in sorted(resources):
        name = resource_class(resource)
        lines.append(f"from tollhouse.sdk.resources.{resource} import Async{name}, {name}\n")
    for prefix, requester in (("", "Requester"), ("Async", "AsyncRequester")):
        lines.append(
            f"\n\nclass {prefix}Resources:\n"
            f'    """`client.<group>.<method>(...)`: each group of the control API."""\n\n'
        )
        lines += [f"    {r}: {prefix}{resource_class(r)}\n" for r in resources]
        lines.append(f"\n    def _attach_resources(self, requester: {requester}) -> None:\n")
        lines += [f"        self.{r} = {prefix}{resource_class(r)}(requester)\n" for r in resources]
    return "".join(lines)


def formatted(files: dict[str, str], root: Path) -> dict[str, str]:
    """Each source with its imports sorted and unused ones dropped, formatted as the
    project's `ruff` does (`root` holds its configuration)."""
    out = {}
    for name, source in files.items():
        for command in (["check", "--fix", "--select", "I,F401", "--quiet"], ["format"]):
            source = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "ruff",
                    *command,
                    "--stdin-filename",
                    str(PACKAGE / name),
                    "-",
                ],
                input=source,
                capture_output=True,
                text=True,
                check=True,
                cwd=root,
            ).stdout
        out[name] = source
    return out


def main() -> None:
    """Rewrite the generated modules from the server's document."""
    from tollhouse.api.app import create_app

    root = PACKAGE.parents[2]
    for name, source in formatted(generate(create_app().openapi()), root).items():
        target = PACKAGE / name
        target.parent.mkdir(exist_ok=True)
        target.write_text(source)


if __name__ == "__main__":
    main()
