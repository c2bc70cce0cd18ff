"""Unmatched URLs under ``/api/`` answer the API's JSON 404 (with ``DEBUG`` too); the site keeps its HTML 404."""
from __future__ import annotations

import pytest
from django.test import override_settings

from tests.plugins.personas import IN_SCOPE
from tests.policies.factories import make_vm

pytestmark = pytest.mark.django_db
NOT_FOUND = {"detail": "Not found.", "errors": ["Not found."]}


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("url", ["/api/v1/vms/abc/", "/api/v1/nothing-here/", "/api/v2/"])
def test_an_unmatched_api_url_is_a_json_404(client, debug, url):
    with override_settings(DEBUG=debug):
        response = client.get(url)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("debug", [False, True])
def test_an_unmatched_site_url_keeps_the_html_404(client, debug):
    with override_settings(DEBUG=debug):
        response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_a_url_missing_its_slash_is_still_redirected(client):
    response = client.get("/api/v1/vms")
    assert response.status_code == 301 and response["Location"] == "/api/v1/vms/"


def test_an_object_hidden_by_the_role_says_not_found_like_every_api_404(persona_mappings, outsider, api_as):
    vm = make_vm(f"{IN_SCOPE}/resourceGroups/rg-api")
    response = api_as(outsider).get(f"/api/v1/vms/{vm.pk}/")
    assert response.status_code == 404 and response.json() == NOT_FOUND


@pytest.mark.parametrize("debug", [False, True])
def test_a_write_to_an_api_url_missing_its_slash_is_refused_not_redirected_into_a_get(
        persona_mappings, requester, api_as, debug):
    from policies.access.models import AccessRequest

    with override_settings(DEBUG=debug):
        response = api_as(requester).post("/api/v1/requests", {"virtualMachines": []})
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["detail"] == "API URLs end with a slash: send this POST to /api/v1/requests/."
    assert not AccessRequest.objects.exists()
    assert api_as(requester).post("/api/v1/nothing-here", {}).json() == NOT_FOUND  # no such URL with a slash either
