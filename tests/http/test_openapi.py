"""GET /api/openapi.json describes every JSON route, from the code's own routes and models."""

from __future__ import annotations

import schemathesis
from starlette.routing import Route

from server.discussion.values import MAX_AUTHOR, MAX_TEXT
from server.http.openapi import json_routes, operation_of
from tests.helpers.servers import Server


async def test_the_document_names_every_json_route_and_method(server: Server) -> None:
    """Each /api route and method the router serves is in the document, and nothing else."""
    async with server.client() as client:
        answer = await client.get("/api/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    doc = answer.json()
    assert doc["openapi"].startswith("3.1")
    served = {
        (r.path.replace(":int}", "}").replace(":str}", "}"), m.lower())
        for r in json_routes(server.app.routes)
        for m in (r.methods or ()) - {"HEAD"}
    }
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
    for route in server.app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/"):
            assert operation_of(route) is not None, f"{route.path} is not @documented"


async def test_the_document_is_valid_openapi_with_the_code_limits(server: Server) -> None:
    """Schemathesis reads every operation; the body limits are the validator's constants."""
    async with server.client() as client:
        doc = (await client.get("/api/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(doc)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(ops) for ops in doc["paths"].values())
    new = doc["components"]["schemas"]["NewComment"]["properties"]
    assert new["author"]["maxLength"] == MAX_AUTHOR and new["text"]["maxLength"] == MAX_TEXT
    post = doc["paths"]["/api/comments"]["post"]["responses"]
    assert {"201", "400", "413", "415", "422"} <= set(post)
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and "fields" in error["properties"]
