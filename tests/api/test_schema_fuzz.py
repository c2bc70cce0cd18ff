"""Schema fuzzing: every operation of the OpenAPI schema, with generated data, against the app in-process.

The schema is loaded from the running app (``/api/schema/`` through WSGI); requests carry a real personal API
token of a user holding every portal role in Production, whose inventory comes from the emulator's demo
scenario. Each operation runs a few derandomized examples, valid (positive) and invalid (negative); half of
the object URLs name real objects so the answers are not all 404. Every answer must be below 500, have a
documented status code and content type, and match its schema.
"""
from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts import services as account_services
from accounts.config import DEMO_TENANT_ID
from jitportal.wsgi import application
from policies.access.models import AccessRequest
from policies.models import PolicyChange, VirtualMachine
from tests.api.conftest import token_of
from tests.plugins.personas import APP_ROLE_OF
from tests.policies.access.factories import ask

pytestmark = pytest.mark.django_db
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 6, GenerationMode.NEGATIVE: 3}


def everything_user():
    """A user of the demo tenant with every portal role at Production (through the usual role mappings)."""
    return account_services.user_sign_in_record(claims={
        "tid": DEMO_TENANT_ID, "oid": "8a0e7c31-0000-4000-8000-0000000000f9",
        "preferred_username": "fuzz@contoso.example", "name": "Fuzz", "roles": sorted(APP_ROLE_OF.values()),
        "groups": []})


def real_ids() -> dict[str, list[int]]:
    return {"/api/v1/vms/": list(VirtualMachine.objects.order_by("pk").values_list("pk", flat=True)[:5]),
            "/api/v1/requests/": list(AccessRequest.objects.order_by("pk").values_list("pk", flat=True)),
            "/api/v1/policy-changes/": list(PolicyChange.objects.order_by("pk").values_list("pk", flat=True))}


@pytest.fixture
def keep_connection():
    """The WSGI handler closes the database connection after each request (``close_old_connections``); the
    test's transaction must survive, as Django's test client arranges for itself."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def fuzz(operation, mode: GenerationMode, count: int, *, headers: dict, real: list[int],
         ran: dict[str, set[int]]) -> None:
    """Run ``count`` derandomized examples of ``operation``; real object ids stand in for half the positive ones."""

    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), use_real=st.booleans(),
           pick=st.integers(min_value=0, max_value=4))
    def run(case, use_real, pick):
        if real and use_real and mode is GenerationMode.POSITIVE:
            case.path_parameters = {**(case.path_parameters or {}), "id": real[pick % len(real)]}
        response = case.call(headers=headers)
        ran.setdefault(operation.label, set()).add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()


def test_every_operation_answers_as_its_schema_says(prod, persona_mappings, requester, keep_connection):
    user = everything_user()
    ask(requester, {"web-02": [22]})  # a request to read, close and extend
    headers = {"Authorization": f"Bearer {token_of(user)}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    ids = real_ids()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    ran: dict[str, set[int]] = {}
    for operation in operations:
        prefix = next((p for p in ids if operation.path.startswith(p) and "{id}" in operation.path), None)
        for mode, count in EXAMPLES.items():
            fuzz(operation, mode, count, headers=headers, real=ids[prefix] if prefix else [], ran=ran)
    assert set(ran) == {op.label for op in operations}
    assert any(200 in codes for codes in ran.values()) and any(400 in codes for codes in ran.values())
