"""schemathesis over the server's own OpenAPI document: whatever it sends, no answer is a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from unimodel.gateway.openapi import build_openapi

from .fakes.server import LiveServer

schema = schemathesis.openapi.from_dict(build_openapi())


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_makes_the_server_answer_5xx(case: schemathesis.Case, gateway: LiveServer) -> None:
    case.call_and_validate(base_url=gateway.url, checks=[not_a_server_error], timeout=10)


def test_the_served_document_is_the_built_one(gateway: LiveServer) -> None:
    import httpx

    served = httpx.get(gateway.url + "/openapi.json").json()
    assert served == build_openapi()
    assert {"/models/v2/{modelId}", "/v1/chat/completions", "/models/v2/openai/v1/chat/completions"} <= set(
        served["paths"]
    )
