"""The Microsoft Graph calls of the emulator: ``/v1.0/me``, memberships with paging, OIDC userinfo."""
from __future__ import annotations

import jwt
import pytest

from emulator.entra.models import EntraGroup
from emulator.scenarios.identities import CONTOSO, PORTAL_CLIENT_ID, PROJECT_GROUPS, WEB_REQUESTERS_GROUP, user_oid
from tests.emulator.entra_helpers import ALICE, BASE, OSCAR, InProcessIdp, demo_tenants


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("entra-certs")


@pytest.fixture
def idp(cert_dir) -> InProcessIdp:
    return InProcessIdp(cert_dir)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_me_describes_the_signed_in_user(idp):
    token = idp.sign_in(ALICE)["access_token"]
    me = idp.get("/v1.0/me", headers=bearer(token)).json
    assert me["id"] == ALICE
    assert me["userPrincipalName"] == me["mail"] == "alice@contoso.example"
    assert (me["displayName"], me["givenName"], me["surname"]) == ("Alice Requester", "Alice", "Requester")


@pytest.mark.parametrize("path", ["/v1.0/me/memberOf", "/v1.0/me/transitiveMemberOf"])
def test_memberships_list_the_users_groups(idp, path):
    token = idp.sign_in(ALICE)["access_token"]
    body = idp.get(path, headers=bearer(token)).json
    assert body["value"] == [{"@odata.type": "#microsoft.graph.group", "id": WEB_REQUESTERS_GROUP,
                              "displayName": "JIT requesters - web", "securityEnabled": True, "mailEnabled": False}]
    assert "@odata.nextLink" not in body
    assert idp.get(path, headers=bearer(idp.sign_in(OSCAR)["access_token"])).json["value"] == []


def test_memberships_are_paged_with_next_links(cert_dir):
    tenants = demo_tenants()
    contoso = tenants[0]
    extra = [EntraGroup(f"9c1d2e3f-0000-4000-8000-{n:012d}", f"Group {n}") for n in range(1, 6)]
    contoso.groups.extend(extra)
    contoso.users[0].groups.extend(g.oid for g in extra)
    idp = InProcessIdp(cert_dir, tenants=tenants)
    token = idp.sign_in(ALICE)["access_token"]
    seen, url = [], "/v1.0/me/transitiveMemberOf?$top=2"
    while url:
        body = idp.get(url.removeprefix(BASE), headers=bearer(token)).json
        assert len(body["value"]) <= 2
        seen += [g["id"] for g in body["value"]]
        url = body.get("@odata.nextLink")
        assert url is None or url.startswith(f"{BASE}/v1.0/me/transitiveMemberOf?")
    assert seen == [WEB_REQUESTERS_GROUP, *(g.oid for g in extra)]


def test_userinfo_answers_with_the_oidc_claims(idp):
    info = idp.get("/oidc/userinfo", headers=bearer(idp.sign_in(ALICE)["access_token"])).json
    assert info["sub"] == ALICE
    assert info["preferred_username"] == info["email"] == "alice@contoso.example"
    assert info["name"] == "Alice Requester"


def test_graph_refuses_missing_and_non_graph_tokens_in_graph_error_shape(idp):
    missing = idp.get("/v1.0/me")
    assert missing.status_code == 401
    assert missing.json["error"]["code"] == "InvalidAuthenticationToken"
    arm = idp.token(grant_type="client_credentials", scope="https://management.azure.com/.default").json
    wrong_audience = idp.get("/v1.0/me", headers=bearer(arm["access_token"]))
    assert wrong_audience.status_code == 401
    assert "audience" in wrong_audience.json["error"]["message"]
    id_token = idp.sign_in(ALICE)["id_token"]
    assert idp.get("/v1.0/me/memberOf", headers=bearer(id_token)).status_code == 401


def test_me_needs_a_delegated_token(idp):
    app_token = idp.token(grant_type="client_credentials", scope="https://graph.microsoft.com/.default").json
    response = idp.get("/v1.0/me", headers=bearer(app_token["access_token"]))
    assert response.status_code == 400
    assert response.json["error"]["code"] == "BadRequest"


def test_a_user_removed_from_the_directory_is_not_found(idp):
    token = idp.sign_in(ALICE)["access_token"]
    tenant = idp.state.tenants[CONTOSO]
    tenant.users = [u for u in tenant.users if u.oid != ALICE]
    assert idp.get("/v1.0/me", headers=bearer(token)).status_code == 404


GRACE = user_oid(8)
GROUPS_PATH = f"/v1.0/users/{GRACE}/transitiveMemberOf/microsoft.graph.group"


def app_graph_token(idp) -> str:
    return idp.token(grant_type="client_credentials", scope="https://graph.microsoft.com/.default").json["access_token"]


def test_a_user_in_more_groups_than_a_token_lists_gets_the_overage_indicator(idp):
    tokens = idp.sign_in(GRACE)
    for token in (tokens["id_token"], tokens["access_token"]):
        claims = jwt.decode(token, options={"verify_signature": False})
        assert "groups" not in claims
        assert claims["_claim_names"] == {"groups": "src1"}
        assert claims["_claim_sources"]["src1"]["endpoint"].endswith(f"/users/{GRACE}/getMemberObjects")
    alice = jwt.decode(idp.sign_in(ALICE)["id_token"], options={"verify_signature": False})
    assert alice["groups"] == [WEB_REQUESTERS_GROUP] and "_claim_names" not in alice


def test_the_app_lists_a_users_transitive_groups_page_by_page(idp):
    token, seen, url, pages = app_graph_token(idp), [], f"{GROUPS_PATH}?$select=id&$top=100", 0
    while url:
        response = idp.get(url.removeprefix(BASE), headers=bearer(token))
        assert response.status_code == 200, response.text
        body = response.json
        assert all(set(row) == {"id"} for row in body["value"])
        seen += [row["id"] for row in body["value"]]
        url, pages = body.get("@odata.nextLink"), pages + 1
        assert url is None or ("$select=id" in url and "$top=100" in url)
    assert pages == 3
    assert seen == [*PROJECT_GROUPS, WEB_REQUESTERS_GROUP]


def test_listing_a_users_groups_needs_an_app_token_with_a_membership_permission(idp):
    assert idp.get(GROUPS_PATH).status_code == 401
    delegated = idp.get(GROUPS_PATH, headers=bearer(idp.sign_in(ALICE)["access_token"]))
    assert (delegated.status_code, delegated.json["error"]["code"]) == (403, "Authorization_RequestDenied")
    idp.state.tenants[CONTOSO].app(PORTAL_CLIENT_ID).graph_permissions = []
    unconsented = idp.get(GROUPS_PATH, headers=bearer(app_graph_token(idp)))
    assert (unconsented.status_code, unconsented.json["error"]["code"]) == (403, "Authorization_RequestDenied")


def test_listing_an_unknown_users_groups_is_not_found(idp):
    response = idp.get("/v1.0/users/00000000-0000-4000-8000-000000000000/transitiveMemberOf/microsoft.graph.group",
                       headers=bearer(app_graph_token(idp)))
    assert (response.status_code, response.json["error"]["code"]) == (404, "Request_ResourceNotFound")
