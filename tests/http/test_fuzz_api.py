"""Schemathesis fuzzes the JSON API from its own OpenAPI document, on a real server.

Properties, for every generated request (valid and invalid ones): no 5xx, only documented
statuses and content types, answers that match the documented shapes, nothing private in
an answer to a reader, and no traceback in the server's log. Both backends; the example
budget per operation is FUZZ_EXAMPLES (small in CI, large under `make fuzz`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers.fuzzing import (
    FuzzServer,
    Tally,
    assert_nothing_private,
    examples,
    fuzz_server,
    long_run,
)

# CI: ten minutes at most per test; `make fuzz` runs as long as its budget takes.
TIMEOUT = 0 if long_run() else 600

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(
    server: FuzzServer, tally: Tally, strategy: st.SearchStrategy[schemathesis.Case], staff: bool
) -> None:
    """Run ``strategy``'s cases against ``server``, anonymous or with the staff token."""
    headers = {"Authorization": f"Bearer {server.token}"} if staff else {}

    @settings(
        max_examples=examples(15),
        derandomize=not long_run(),
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=server.url, headers=headers, timeout=30)
        tally.add(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)
        assert_nothing_private(response.content, staff=staff)

    run()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@pytest.mark.timeout(TIMEOUT)
def test_api_answers_every_generated_request_as_documented(backend: str, tmp_path: Path) -> None:
    """Every operation, anonymous and as staff, valid and invalid input: as the document says."""
    with fuzz_server(backend, tmp_path) as server:
        schema = schemathesis.openapi.from_url(server.url + "/api/openapi.json")
        tally = Tally("api (schemathesis)", backend)
        for result in schema.get_all_operations():
            operation = result.ok()
            strategy = st.one_of(
                operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
            )
            for staff in (False, True):
                fuzz(server, tally, strategy, staff)
        tally.write()
        server.assert_clean_log()
