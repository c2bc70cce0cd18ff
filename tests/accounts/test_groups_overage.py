"""Group overage: a user in more groups than a token lists signs in through the real flow, and the portal reads
their groups from Microsoft Graph (the emulator's) to apply group mappings, or says why it could not."""
import copy

import pytest
from django.test import Client
from django.urls import reverse

from accounts import authz
from accounts.demo import WEB_RESOURCE_GROUP, demo_role_mappings_ensure
from accounts.models import SignInClaims, User
from accounts.roles import VM_READ
from audit.models import AuditEvent
from emulator.scenarios.demo import demo_scenario
from emulator.scenarios.identities import PROJECT_GROUPS, WEB_REQUESTERS_GROUP, demo_identities, user_oid
from tests.plugins.personas import IN_SCOPE, sign_in_with_client

pytestmark = pytest.mark.django_db(transaction=True)

GRACE = user_oid(8)
GROUPS_PATH = f"/v1.0/users/{GRACE}/transitiveMemberOf/microsoft.graph.group"


@pytest.fixture
def client(entra_settings, fresh_emulator) -> Client:
    """A test client on a loopback host the emulator accepts, with the demo's role mappings."""
    demo_role_mappings_ensure()
    return Client(SERVER_NAME="127.0.0.1")


def graph_calls(emulator) -> list[dict]:
    return [c for c in emulator.calls() if c["path"] == GROUPS_PATH]


def grace() -> User:
    return User.objects.get(entra_object_id=GRACE)


def test_an_overage_user_gets_the_role_a_group_mapping_grants(client, fresh_emulator):
    response = sign_in_with_client(client, fresh_emulator, GRACE)
    assert (response.status_code, response["Location"]) == (302, "/")

    claims = SignInClaims.objects.get(user=grace())
    assert claims.groups_overage and not claims.groups_error
    assert claims.groups == sorted([*PROJECT_GROUPS, WEB_REQUESTERS_GROUP])
    web_vm = f"{WEB_RESOURCE_GROUP}/providers/Microsoft.Compute/virtualMachines/web-01"
    assert authz.has_permission(grace(), VM_READ, web_vm)
    assert not authz.has_permission(grace(), VM_READ, f"{IN_SCOPE}/resourceGroups/rg-data-prod")
    # 251 groups, pages of at most 200 (the emulator's page size): the mapped group is on the second page.
    assert [c["status"] for c in graph_calls(fresh_emulator)] == [200, 200]

    body = client.get(reverse("my_access")).content.decode()
    assert "JIT requesters - web: the web tier" in body
    assert 'id="groups-from-graph"' in body and "251 groups" in body
    assert 'id="groups-overage"' not in body
    event = AuditEvent.objects.get(action="user.sign_in")
    assert event.after["groups"] == [WEB_REQUESTERS_GROUP] and event.after["groups_from_graph"] == 251


def test_with_graph_down_an_overage_user_signs_in_with_app_roles_only_and_a_note(client, fresh_emulator):
    fresh_emulator.control("PUT", f"entra/users/{GRACE}", json={"app_roles": ["JIT.Reader"]})
    fresh_emulator.add_fault(r"/transitiveMemberOf/", "503")
    response = sign_in_with_client(client, fresh_emulator, GRACE)
    assert (response.status_code, response["Location"]) == (302, "/")

    claims = SignInClaims.objects.get(user=grace())
    assert claims.groups_overage and claims.groups == [] and "503" in claims.groups_error
    assert authz.has_permission(grace(), VM_READ, f"{IN_SCOPE}/resourceGroups/rg-data-prod")  # JIT.Reader's mapping
    assert [g.source_kind for g in authz.grants_for(grace())] == ["app_role"]

    response = client.get(reverse("my_access"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="groups-overage"' in body and "could not read them from Microsoft Graph" in body
    assert "503 ServiceUnavailable" in body
    assert "Readers see Production JIT status" in body


def test_graph_refusing_the_portal_is_explained(client, fresh_emulator):
    identities = copy.deepcopy(demo_identities())
    for tenant in identities:
        for app in tenant["apps"]:
            app["graph_permissions"] = []  # no admin consent for GroupMember.Read.All
    fresh_emulator.load_scenario(demo_scenario() | {"identities": identities})
    assert sign_in_with_client(client, fresh_emulator, GRACE).status_code == 302

    body = client.get(reverse("my_access")).content.decode()
    assert "403 Authorization_RequestDenied" in body
    assert "GroupMember.Read.All application permission" in body
    assert 'id="no-access"' in body


def test_a_user_within_the_limit_is_not_looked_up(client, fresh_emulator):
    assert sign_in_with_client(client, fresh_emulator, user_oid(1)).status_code == 302
    assert graph_calls(fresh_emulator) == []
    claims = SignInClaims.objects.get(user__entra_object_id=user_oid(1))
    assert claims.groups == [WEB_REQUESTERS_GROUP] and not claims.groups_overage
