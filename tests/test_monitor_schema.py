"""Schema-driven test of the dashboard's JSON API: every operation of /api/openapi.json, generated requests.

The app runs in-process (WSGI) against moto's server with seeded state. With
the token sent, generated actions reach the operator module too. Operations
are driven with hypothesis directly (schemathesis's pytest plugin does not
load under pytest 9), a few examples each to keep the suite fast.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from monitorkit import TOKEN, seeded_env
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.timeout(180)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
HEADERS = {"Authorization": f"Bearer {TOKEN}", "X-Skynet-Request": "1"}


def test_no_generated_request_gets_a_server_error():
    with seeded_env() as seeded:
        schema = schemathesis.openapi.from_wsgi("/api/openapi.json", seeded.app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 22  # every path of the API is described, actions (promote, deploy) included
        exercised = []
        for operation in operations:
            @given(case=operation.as_strategy())
            @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def call(case):
                case.call_and_validate(headers=HEADERS, checks=CHECKS)

            call()
            exercised.append(operation.label)
        assert "POST /api/rollouts/{rollout_id}/resume" in exercised
