"""``GET /api/openapi.json``: an OpenAPI 3.1 document generated from the running routes.

Each JSON handler carries its own description (``@documented(...)`` right above it): the
models it takes and answers (server/http/models.py), its query parameters and every status it
can answer. The document is built by walking the app's routes, so a JSON route without a
description fails the suite (tests/http/test_openapi.py), a path or method can never differ from
the router's, and the schemas come from the same Structs and limits the code uses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.discussion.values import MAX_ID
from server.http import models

F = TypeVar("F", bound=Callable[..., Any])

# What each status means, said once for the whole document.
MEANING = {
    200: "OK",
    201: "Created",
    202: "Accepted: queued",
    204: "Done; no body",
    400: "Malformed: not JSON, nested too deeply, or a bad query parameter",
    401: "No (valid) credentials: staff token or session, or the comment's edit token",
    403: "Not allowed: origin, role, edit window, or a closed thread",
    404: "No such comment (or not one you may see)",
    409: "Conflicts with something that exists already",
    413: "The body is larger than 64 KiB",
    415: "The body is not application/json",
    422: "Some fields need attention: see `fields`",
    429: "Too many requests from this address; see Retry-After",
    503: "The database is not reachable right now",
}

# What a staff-only route answers anyone else: no or a bad credential, a role that may not,
# or no database to check the credential against.
STAFF_ONLY = "Staff only: an API token (Authorization: Bearer …) or a staff session."
STAFF_REFUSALS: Mapping[int, Any] = {401: models.Error, 403: models.Error, 503: models.Error}


@dataclass(frozen=True)
class Param:
    name: str
    schema: Mapping[str, Any]
    description: str
    required: bool = False
    where: str = "query"
    many: bool = False


@dataclass(frozen=True)
class Operation:
    """One route's description: what it takes and every status it answers."""

    summary: str
    responses: Mapping[int, Any]  # status → model (None: no body)
    body: Any = None
    params: tuple[Param, ...] = ()
    staff: bool = False
    tags: tuple[str, ...] = ("comments",)
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[int, Mapping[str, str]] = field(default_factory=dict)  # status → name → why


def documented(operation: Operation) -> Callable[[F], F]:
    """Attach ``operation`` to a handler; the document generator reads it from the route."""

    def attach(handler: F) -> F:
        handler.openapi = operation  # type: ignore[attr-defined]
        return handler

    return attach


def operation_of(route: BaseRoute) -> Operation | None:
    return getattr(getattr(route, "endpoint", None), "openapi", None)


def json_routes(routes: Iterable[BaseRoute]) -> list[Route]:
    """The routes that answer JSON: everything under /api/, and /healthz."""
    return [
        r
        for r in routes
        if isinstance(r, Route) and (r.path.startswith("/api/") or r.path == "/healthz")
    ]


_PARAM = re.compile(r"{(\w+)(?::(\w+))?}")


def _path_params(path: str) -> list[dict[str, Any]]:
    found = []
    for name, kind in _PARAM.findall(path):
        schema: dict[str, Any] = {"type": "string"}
        if kind == "int":
            schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
        found.append({"name": name, "in": "path", "required": True, "schema": schema})
    return found


def document(routes: Iterable[BaseRoute], *, version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document for every JSON route in ``routes``."""
    used: set[Any] = {models.Error}
    paths: dict[str, dict[str, Any]] = {}
    for route in json_routes(routes):
        op = operation_of(route)
        if op is None:
            raise LookupError(f"{route.path} has no @documented description")
        path = _PARAM.sub(r"{\1}", route.path)
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = _operation(route, method, op, used)
    schemas, components = _schemas(used)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kibitz",
            "version": version,
            "description": "Comments, moderation and counts. Errors always have the shape "
            '`Error`: `{"error": "…", "fields": {"name": "…"}}`.',
        },
        "paths": _resolve(paths, schemas),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A staff API token, or a comment's edit token.",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "kibitz_session"},
            },
        },
    }


def _operation(route: Route, method: str, op: Operation, used: set[Any]) -> dict[str, Any]:
    overrides = {p.name for p in op.params if p.where == "path"}
    params = [p for p in _path_params(route.path) if p["name"] not in overrides]
    for p in op.params:
        schema = dict(p.schema)
        if p.many:
            schema = {"type": "array", "items": schema, "minItems": 1}
        params.append(
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "description": p.description,
                "schema": schema,
                **({"style": "form", "explode": True} if p.many else {}),
            }
        )
    out: dict[str, Any] = {
        "operationId": f"{route.name}_{method.lower()}",
        "summary": op.summary,
        "tags": list(op.tags),
        "responses": {},
    }
    if op.description:
        out["description"] = op.description
    if params:
        out["parameters"] = params
    if op.body is not None:
        used.add(op.body)
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$model": op.body}}},
        }
    if op.staff:
        out["security"] = [{"bearer": []}, {"session": []}]
    for status, model in sorted(op.responses.items()):
        answer: dict[str, Any] = {"description": MEANING[status]}
        if model is not None:
            used.add(model)
            answer["content"] = {"application/json": {"schema": {"$model": model}}}
        if status in op.headers:
            answer["headers"] = {
                name: {"description": why, "schema": {"type": "string"}}
                for name, why in op.headers[status].items()
            }
        out["responses"][str(status)] = answer
    out.update(op.extra)
    return out


def _schemas(used: set[Any]) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    ordered = sorted(used, key=repr)
    inline, components = msgspec.json.schema_components(
        ordered, ref_template="#/components/schemas/{name}"
    )
    return dict(zip(ordered, inline, strict=True)), components


def _resolve(value: Any, schemas: Mapping[Any, dict[str, Any]]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$model"}:
            return schemas[value["$model"]]
        return {k: _resolve(v, schemas) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, schemas) for v in value]
    return value


@documented(
    Operation(
        summary="This document: OpenAPI 3.1 for every JSON route",
        responses={200: models.OpenAPI},
        tags=("meta",),
    )
)
async def openapi_json(request: Request) -> Response:
    cached = getattr(request.app.state, "openapi_body", None)
    if cached is None:
        cached = msgspec.json.encode(document(request.app.routes))
        request.app.state.openapi_body = cached
    return Response(cached, media_type="application/json")


routes = [Route("/api/openapi.json", openapi_json, methods=["GET"])]
