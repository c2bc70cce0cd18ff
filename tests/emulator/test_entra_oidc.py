"""The emulated Entra ID's OpenID Connect endpoints, in process: discovery, authorize, token, logout, knobs."""
from __future__ import annotations

import base64
import json
import re

import jwt
import pytest

from emulator.entra.keys import KEY_FILE
from emulator.scenarios.identities import CONTOSO, FABRIKAM, PORTAL_CLIENT_ID, PORTAL_SECRET, WEB_REQUESTERS_GROUP
from tests.emulator.entra_helpers import (
    ALICE,
    ALICE_NOT_ASSIGNED,
    BASE,
    OSCAR,
    REDIRECT,
    UUID,
    InProcessIdp,
    NonceMismatch,
    demo_tenants,
    query_of,
)


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory):
    """One signing key for the module (making an RSA key per test would be slow)."""
    return tmp_path_factory.mktemp("entra-certs")


@pytest.fixture
def idp(cert_dir) -> InProcessIdp:
    return InProcessIdp(cert_dir)


def assert_entra_error(response, status: int, error: str, aadsts: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json
    assert body["error"] == error
    assert body["error_description"].startswith(f"AADSTS{aadsts}:")
    assert body["error_codes"] == [aadsts]
    assert {"timestamp", "trace_id", "correlation_id"} <= body.keys()
    return body


# --- discovery and keys ---------------------------------------------------------------------------------------
def test_discovery_describes_the_tenant_with_pkce_and_a_graph_style_userinfo(idp):
    doc = idp.get(f"/{CONTOSO}/v2.0/.well-known/openid-configuration").json
    assert doc["issuer"] == f"{BASE}/{CONTOSO}/v2.0"
    assert doc["authorization_endpoint"] == f"{BASE}/{CONTOSO}/oauth2/v2.0/authorize"
    assert doc["token_endpoint"] == f"{BASE}/{CONTOSO}/oauth2/v2.0/token"
    assert doc["jwks_uri"] == f"{BASE}/{CONTOSO}/discovery/v2.0/keys"
    assert doc["end_session_endpoint"] == f"{BASE}/{CONTOSO}/oauth2/v2.0/logout"
    assert doc["userinfo_endpoint"] == f"{BASE}/oidc/userinfo"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "code" in doc["response_types_supported"]
    assert doc["tenant_region_scope"]


def test_a_tenant_is_found_by_its_domain_too(idp):
    doc = idp.get("/contoso.example/v2.0/.well-known/openid-configuration").json
    assert doc["issuer"] == f"{BASE}/{CONTOSO}/v2.0"


def test_organizations_discovery_has_a_tenant_template_issuer(idp):
    doc = idp.get("/organizations/v2.0/.well-known/openid-configuration").json
    assert doc["issuer"] == f"{BASE}/{{tenantid}}/v2.0"
    assert doc["authorization_endpoint"] == f"{BASE}/organizations/oauth2/v2.0/authorize"


def test_an_unknown_tenant_gets_aadsts90002(idp):
    response = idp.get("/no-such-tenant/v2.0/.well-known/openid-configuration")
    assert_entra_error(response, 400, "invalid_tenant", 90002)


def test_the_discovery_knob_spoils_every_discovery_document_until_cleared(idp):
    url = f"/{CONTOSO}/v2.0/.well-known/openid-configuration"
    assert idp.post("/_emulator/entra/discovery", json={"mode": "sloppy"}).status_code == 400
    spoiled = {}
    for mode in ("no_jwks_uri", "jwks_uri_not_a_string", "jwks_uri_over_http", "not_an_object", "not_json",
                 "no_authorization_endpoint", "no_token_endpoint", "token_endpoint_over_http", "no_issuer"):
        assert idp.post("/_emulator/entra/discovery", json={"mode": mode}).json == {"mode": mode}
        idp.get(url)
        spoiled[mode] = idp.get(url)  # not only the next one
    assert {mode: answer.status_code for mode, answer in spoiled.items()} == dict.fromkeys(spoiled, 200)
    assert "jwks_uri" not in spoiled["no_jwks_uri"].json
    assert not isinstance(spoiled["jwks_uri_not_a_string"].json["jwks_uri"], str)
    host = BASE.removeprefix("https://")
    assert spoiled["jwks_uri_over_http"].json["jwks_uri"] == f"http://{host}/{CONTOSO}/discovery/v2.0/keys"
    assert isinstance(spoiled["not_an_object"].json, list)
    assert spoiled["not_json"].mimetype == "text/html"
    assert "authorization_endpoint" not in spoiled["no_authorization_endpoint"].json
    assert "token_endpoint" not in spoiled["no_token_endpoint"].json
    assert spoiled["token_endpoint_over_http"].json["token_endpoint"] == f"http://{host}/{CONTOSO}/oauth2/v2.0/token"
    assert "issuer" not in spoiled["no_issuer"].json
    assert idp.client.delete("/_emulator/entra/discovery").json == {"mode": None}
    assert idp.get(url).json["jwks_uri"] == f"{BASE}/{CONTOSO}/discovery/v2.0/keys"


def test_the_jwks_knob_spoils_every_key_set_until_cleared_and_leaves_discovery_alone(idp):
    good = idp.jwks()["keys"][0]
    assert idp.post("/_emulator/entra/jwks", json={"mode": "no_jwks_uri"}).status_code == 400
    spoiled = {}
    for mode in ("keys_not_a_list", "key_not_an_object", "wrong_kty", "no_modulus", "modulus_not_base64url"):
        assert idp.post("/_emulator/entra/jwks", json={"mode": mode}).json == {"mode": mode}
        idp.jwks()
        spoiled[mode] = idp.jwks()["keys"]  # not only the next one
    assert spoiled["keys_not_a_list"] == {good["kid"]: good}
    assert spoiled["key_not_an_object"] == [json.dumps(good)]
    assert spoiled["wrong_kty"] == [dict(good, kty="EC")]
    assert "n" not in spoiled["no_modulus"][0] and spoiled["no_modulus"][0]["kid"] == good["kid"]
    assert spoiled["modulus_not_base64url"] == [dict(good, n="A")]
    assert idp.get("/_emulator/entra/discovery").json == {"mode": None}
    assert idp.get(f"/{CONTOSO}/v2.0/.well-known/openid-configuration").json["jwks_uri"]
    assert idp.client.delete("/_emulator/entra/jwks").json == {"mode": None}
    assert idp.jwks()["keys"] == [good]


def test_the_signing_key_is_made_once_and_reused_after_a_restart(tmp_path):
    first = InProcessIdp(tmp_path / "certs").jwks()["keys"]
    assert (tmp_path / "certs" / KEY_FILE).exists()
    again = InProcessIdp(tmp_path / "certs").jwks()["keys"]
    other = InProcessIdp(tmp_path / "elsewhere").jwks()["keys"]
    assert [k["kid"] for k in first] == [k["kid"] for k in again]
    assert first[0]["n"] == again[0]["n"]
    assert other[0]["kid"] != first[0]["kid"]


# --- the sign-in page -----------------------------------------------------------------------------------------
def test_the_sign_in_page_offers_every_user_of_the_tenant_and_cancel(idp):
    page = idp.authorize()
    assert page.status_code == 200
    html = page.text
    for user in idp.state.tenants[CONTOSO].users:
        assert user.display_name in html
        assert user.username in html
        assert f'name="user_oid" value="{user.oid}"' in html
    assert "mallory@fabrikam.example" not in html
    assert html.count('<button type="submit"') == len(idp.state.tenants[CONTOSO].users) == 8
    assert re.search(r'<button class="cancel" type="submit" name="cancel" value="1">Cancel</button>', html)
    assert 'name="code_challenge"' in html  # the original parameters travel with each choice


def test_login_hint_highlights_and_focuses_that_user(idp):
    html = idp.authorize(login_hint="Bob@contoso.example").text
    assert re.search(r'data-username="bob@contoso.example"\s+class="hint" autofocus', html)
    assert html.count("autofocus") == 1


def test_every_name_on_the_sign_in_page_is_escaped(cert_dir):
    tenants = demo_tenants()
    tenants[0].users[0].display_name = '<script>alert("x")</script>'
    tenants[0].apps[0].display_name = "<b>Portal</b>"
    idp = InProcessIdp(cert_dir, tenants=tenants)
    html = idp.authorize(state='"><img src=x onerror=alert(1)>').text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;b&gt;Portal&lt;/b&gt;" in html
    assert "<img" not in html


def test_choosing_a_user_redirects_with_a_code_and_the_state(idp):
    callback = idp.choose(ALICE)
    assert callback["state"] == "st-1"
    assert len(callback["code"]) > 40


def test_cancel_redirects_with_access_denied_and_the_state(idp):
    response = idp.post(f"/{CONTOSO}/oauth2/v2.0/authorize", data={**idp.params, "cancel": "1"})
    assert response.status_code == 302
    query = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(REDIRECT)
    assert query["error"] == "access_denied"
    assert query["error_description"].startswith("AADSTS65004: User declined to consent")
    assert query["state"] == "st-1"




def test_a_user_not_assigned_to_the_app_is_refused_with_aadsts50105_until_assigned_again(idp):
    """Entra ID's refusal by the organisation: the user signs in, the app requires assignment, they have none."""
    assert idp.client.get(f"/_emulator/entra/users/{ALICE}").json["assigned"] is True
    unassigned = idp.client.put(f"/_emulator/entra/users/{ALICE}", json={"assigned": False})
    assert unassigned.status_code == 200 and unassigned.json["assigned"] is False
    assert unassigned.json["app_roles"] == ["JIT.Requester"]  # the other fields as they were
    response = idp.post(f"/{CONTOSO}/oauth2/v2.0/authorize", data={**idp.params, "user_oid": ALICE})
    assert response.status_code == 302 and response.headers["Location"].startswith(REDIRECT)
    query = query_of(response.headers["Location"])
    assert query["error"] == "access_denied" and query["state"] == "st-1" and "code" not in query
    assert ALICE_NOT_ASSIGNED.fullmatch(query["error_description"]), query["error_description"]
    assert idp.choose(OSCAR)["code"]  # only that user

    assert idp.client.put(f"/_emulator/entra/users/{ALICE}", json={"assigned": True}).json["assigned"] is True
    assert idp.sign_in(ALICE)["id_token"]


@pytest.mark.parametrize("body", [{"assigned": "false"}, {"assigned": 0}, {"assigned": []}, ["assigned"],
                                  "not json"])
def test_the_user_knob_refuses_a_bad_assigned_and_changes_nothing(idp, body):
    kwargs = {"data": body, "content_type": "application/json"} if body == "not json" else {"json": body}
    response = idp.client.put(f"/_emulator/entra/users/{ALICE}", **kwargs)
    assert response.status_code == 400 and "error" in response.json
    assert idp.client.get(f"/_emulator/entra/users/{ALICE}").json["assigned"] is True
    assert idp.choose(ALICE)["code"]


@pytest.mark.parametrize("overrides", [{"code_challenge": ""}, {"code_challenge_method": "plain"},
                                       {"code_challenge_method": ""}])
def test_authorize_without_an_s256_challenge_is_refused_by_redirect(idp, overrides):
    response = idp.authorize(**overrides)
    assert response.status_code == 302
    query = query_of(response.headers["Location"])
    assert query["error"] == "invalid_request"
    assert query["state"] == "st-1"


def test_authorize_needs_the_openid_scope_and_response_type_code(idp):
    assert query_of(idp.authorize(scope="profile").headers["Location"])["error"] == "invalid_request"
    assert query_of(idp.authorize(response_type="token").headers["Location"])["error"] == "unsupported_response_type"


def test_silent_sign_in_answers_login_required(idp):
    assert query_of(idp.authorize(prompt="none").headers["Location"])["error"] == "login_required"


@pytest.mark.parametrize("uri", ["https://attacker.example/accounts/oidc/entra/login/callback/",
                                 "http://127.0.0.1:8000/elsewhere/",
                                 "https://127.0.0.1:8000/accounts/oidc/entra/login/callback/"])
def test_an_unregistered_redirect_uri_gets_an_error_page_and_no_redirect(idp, uri):
    response = idp.authorize(redirect_uri=uri)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "AADSTS50011" in response.text
    chosen = idp.post(f"/{CONTOSO}/oauth2/v2.0/authorize", data={**idp.params, "redirect_uri": uri,
                                                                 "user_oid": ALICE})
    assert chosen.status_code == 400
    assert "Location" not in chosen.headers


def test_a_loopback_redirect_uri_may_use_any_port(idp):
    uri = "http://localhost:61234/accounts/oidc/entra/login/callback/"
    callback = idp.choose(ALICE, redirect_uri=uri)
    assert callback["code"]


def test_an_unknown_client_gets_an_error_page(idp):
    response = idp.authorize(client_id="11111111-2222-3333-4444-555555555555")
    assert response.status_code == 400
    assert "AADSTS700016" in response.text
    assert "Location" not in response.headers


def test_form_post_response_mode_posts_the_code_to_the_redirect_uri(idp):
    response = idp.post(f"/{CONTOSO}/oauth2/v2.0/authorize",
                        data={**idp.params, "response_mode": "form_post", "user_oid": ALICE})
    assert response.status_code == 200
    assert f'action="{REDIRECT}"' in response.text
    assert re.search(r'name="code" value="[\w-]{40,}"', response.text)


# --- the token endpoint: authorization code -------------------------------------------------------------------
def test_the_code_exchange_returns_tokens_verifiable_with_the_jwks(idp):
    body = idp.sign_in(ALICE)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert "openid" in body["scope"].split()
    claims = idp.verify_id_token(body["id_token"])
    assert claims["tid"] == CONTOSO
    assert claims["oid"] == ALICE
    assert claims["aud"] == PORTAL_CLIENT_ID
    assert claims["preferred_username"] == "alice@contoso.example"
    assert claims["name"] == "Alice Requester"
    assert claims["email"] == "alice@contoso.example"
    assert claims["roles"] == ["JIT.Requester"]
    assert claims["groups"] == [WEB_REQUESTERS_GROUP]
    assert claims["nonce"] == idp.nonce
    assert claims["ver"] == "2.0"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["sub"] and claims["sub"] != ALICE
    assert jwt.get_unverified_header(body["id_token"])["kid"] == idp.jwks()["keys"][0]["kid"]
    access = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert access["aud"] == "https://graph.microsoft.com"
    assert body["refresh_token"]


def test_a_user_without_roles_or_groups_gets_no_such_claims(idp):
    claims = idp.verify_id_token(idp.sign_in(OSCAR)["id_token"])
    assert "roles" not in claims
    assert "groups" not in claims


def test_roles_the_app_does_not_define_are_left_out(cert_dir):
    tenants = demo_tenants()
    tenants[0].users[0].app_roles = ["JIT.Requester", "Some.Other.App.Role"]
    idp = InProcessIdp(cert_dir, tenants=tenants)
    assert idp.verify_id_token(idp.sign_in(ALICE)["id_token"])["roles"] == ["JIT.Requester"]


def test_no_refresh_token_without_offline_access(idp):
    code = idp.choose(ALICE, scope="openid profile email")["code"]
    body = idp.exchange(code).json
    assert "refresh_token" not in body
    assert body["id_token"]


def test_a_wrong_code_verifier_is_refused(idp):
    code = idp.choose()["code"]
    assert_entra_error(idp.exchange(code, code_verifier="x" * 50), 400, "invalid_grant", 501481)


def test_a_code_is_redeemed_once(idp):
    code = idp.choose()["code"]
    assert idp.exchange(code).status_code == 200
    assert_entra_error(idp.exchange(code), 400, "invalid_grant", 54005)


def test_a_code_is_bound_to_its_redirect_uri(idp):
    code = idp.choose()["code"]
    response = idp.exchange(code, redirect_uri="http://127.0.0.1:45678/other/")
    assert_entra_error(response, 400, "invalid_grant", 50148)


def test_a_code_expires_on_the_virtual_clock(idp):
    code = idp.choose()["code"]
    idp.state.advance(11 * 60)
    assert_entra_error(idp.exchange(code), 400, "invalid_grant", 70008)


def test_a_code_from_one_tenant_is_not_redeemed_at_another(idp):
    code = idp.choose()["code"]
    assert_entra_error(idp.exchange(code, tenant=FABRIKAM), 400, "invalid_grant", 54005)


def test_a_wrong_client_secret_is_refused_without_burning_the_code(idp):
    code = idp.choose()["code"]
    assert_entra_error(idp.exchange(code, client_secret="wrong"), 401, "invalid_client", 7000215)
    assert idp.exchange(code).status_code == 200


def test_the_client_may_authenticate_with_http_basic(idp):
    code = idp.choose()["code"]
    basic = base64.b64encode(f"{PORTAL_CLIENT_ID}:{PORTAL_SECRET}".encode()).decode()
    response = idp.post(f"/{CONTOSO}/oauth2/v2.0/token", headers={"Authorization": f"Basic {basic}"},
                        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                              "code_verifier": idp.verifier})
    assert response.status_code == 200, response.text


def test_an_unsupported_grant_type_is_refused(idp):
    assert_entra_error(idp.token(grant_type="password"), 400, "unsupported_grant_type", 70003)


# --- spoiled ID tokens ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "failure"),
    [
        ("tampered", jwt.InvalidSignatureError),
        ("expired", jwt.ExpiredSignatureError),
        ("wrong_audience", jwt.InvalidAudienceError),
        ("wrong_issuer", jwt.InvalidIssuerError),
        ("wrong_tenant", jwt.InvalidIssuerError),
        ("no_nonce", jwt.MissingRequiredClaimError),
        ("bad_nonce", NonceMismatch),
    ],
)
def test_each_spoil_mode_makes_the_next_id_token_fail_its_check(idp, mode, failure):
    idp.spoil_next_id_token(mode)
    spoiled = idp.sign_in(ALICE)["id_token"]
    with pytest.raises(failure):
        idp.verify_id_token(spoiled)
    assert idp.verify_id_token(idp.sign_in(ALICE)["id_token"])["oid"] == ALICE  # one token only


def test_a_wrong_tenant_token_names_another_known_tenant_and_verifies_as_that_tenant(idp):
    idp.spoil_next_id_token("wrong_tenant")
    token = idp.sign_in(ALICE)["id_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["tid"] == FABRIKAM
    assert idp.verify_id_token(token, tenant=FABRIKAM)["tid"] == FABRIKAM  # validly signed, for Fabrikam


def test_a_tampered_token_claims_more_roles_than_the_user_has(idp):
    idp.spoil_next_id_token("tampered")
    claims = jwt.decode(idp.sign_in(ALICE)["id_token"], options={"verify_signature": False})
    assert "JIT.PolicyAdmin" in claims["roles"]


def test_the_spoil_knob_refuses_unknown_modes_and_can_be_cleared(idp):
    assert idp.post("/_emulator/entra/next-id-token", json={"mode": "sloppy"}).status_code == 400
    idp.spoil_next_id_token("expired")
    assert idp.client.delete("/_emulator/entra/next-id-token").json == {"mode": None}
    assert idp.verify_id_token(idp.sign_in()["id_token"])


def test_a_refresh_does_not_use_up_the_spoil_knob(idp):
    refresh = idp.sign_in()["refresh_token"]
    idp.spoil_next_id_token("expired")
    renewed = idp.token(grant_type="refresh_token", refresh_token=refresh).json
    jwt.decode(renewed["id_token"], options={"verify_signature": False, "verify_exp": True})
    with pytest.raises(jwt.ExpiredSignatureError):
        idp.verify_id_token(idp.sign_in()["id_token"])


# --- refresh tokens -------------------------------------------------------------------------------------------
def test_a_refresh_token_rotates_and_reflects_role_and_group_changes(idp):
    first = idp.sign_in(ALICE)
    changed = idp.client.put(f"/_emulator/entra/users/{ALICE}", json={"app_roles": [], "groups": []})
    assert changed.json["app_roles"] == []
    renewed = idp.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    claims = jwt.decode(renewed.json["id_token"], options={"verify_signature": False})
    assert "roles" not in claims
    assert "groups" not in claims
    assert renewed.json["refresh_token"] != first["refresh_token"]
    again = idp.token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert_entra_error(again, 400, "invalid_grant", 9002313)
    idp.client.put(f"/_emulator/entra/users/{ALICE}", json={"app_roles": ["JIT.PolicyAdmin"]})
    third = idp.token(grant_type="refresh_token", refresh_token=renewed.json["refresh_token"]).json
    assert jwt.decode(third["id_token"], options={"verify_signature": False})["roles"] == ["JIT.PolicyAdmin"]


def test_a_refresh_token_is_only_for_its_client(idp):
    refresh = idp.sign_in()["refresh_token"]
    assert idp.token(grant_type="refresh_token", refresh_token=refresh, client_secret="nope").status_code == 401


def assert_not_assigned(response) -> None:
    """Entra ID's token endpoint refusing a user taken off the app: ``invalid_grant``, AADSTS50105 in its words
    with the Trace ID, Correlation ID and Timestamp, and no token."""
    body = assert_entra_error(response, 400, "invalid_grant", 50105)
    assert re.fullmatch(
        r"AADSTS50105: Your administrator has configured the application JIT Portal \('[0-9a-f-]+'\) to block users "
        r"unless they are specifically granted \('assigned'\) access to the application\. The signed in user "
        r"'alice@contoso\.example' is blocked because .* Please contact your administrator to assign access to this "
        rf"application\. Trace ID: {UUID} Correlation ID: {UUID} Timestamp: \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\dZ",
        body["error_description"]), body["error_description"]
    assert not {"access_token", "id_token", "refresh_token"} & body.keys()


def test_a_refresh_for_a_user_taken_off_the_app_is_refused_with_aadsts50105_until_assigned_again(idp):
    refresh = idp.sign_in(ALICE)["refresh_token"]
    oscar = idp.sign_in(OSCAR)["refresh_token"]
    idp.client.put(f"/_emulator/entra/users/{ALICE}", json={"assigned": False})
    assert_not_assigned(idp.token(grant_type="refresh_token", refresh_token=refresh))
    assert_not_assigned(idp.token(grant_type="refresh_token", refresh_token=refresh, scope="openid offline_access"))
    assert idp.token(grant_type="refresh_token", refresh_token=oscar).status_code == 200  # only that user

    # Refused, not revoked (Entra ID checks the assignment at each issuance): assigned again, the token works.
    idp.client.put(f"/_emulator/entra/users/{ALICE}", json={"assigned": True})
    renewed = idp.token(grant_type="refresh_token", refresh_token=refresh)
    assert renewed.status_code == 200, renewed.text
    assert jwt.decode(renewed.json["id_token"], options={"verify_signature": False})["oid"] == ALICE


def test_a_refresh_token_of_another_client_or_past_its_life_is_refused_for_that_first(idp):
    """The assignment is checked once the token is known good: a wrong secret, an expired token, say so."""
    refresh = idp.sign_in(ALICE)["refresh_token"]
    idp.client.put(f"/_emulator/entra/users/{ALICE}", json={"assigned": False})
    assert idp.token(grant_type="refresh_token", refresh_token=refresh, client_secret="nope").status_code == 401
    idp.state.advance(91 * 24 * 3600)
    assert_entra_error(idp.token(grant_type="refresh_token", refresh_token=refresh), 400, "invalid_grant", 700082)


def test_a_code_issued_before_the_user_was_taken_off_the_app_is_refused_with_aadsts50105(idp):
    code = idp.choose(ALICE)["code"]
    idp.client.put(f"/_emulator/entra/users/{ALICE}", json={"assigned": False})
    assert_not_assigned(idp.exchange(code))
    idp.client.put(f"/_emulator/entra/users/{ALICE}", json={"assigned": True})
    assert_entra_error(idp.exchange(code), 400, "invalid_grant", 54005)  # one use, refused or not


def test_the_user_knob_validates_and_reports_unknown_users(idp):
    assert idp.client.put(f"/_emulator/entra/users/{ALICE}", json={"app_roles": "JIT.Reader"}).status_code == 400
    assert idp.client.put("/_emulator/entra/users/nobody", json={"app_roles": []}).status_code == 404
    assert idp.client.get(f"/_emulator/entra/users/{ALICE}").json["app_roles"] == ["JIT.Requester"]


# --- client credentials ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("scope", "audience"), [
    ("https://management.azure.com/.default", "https://management.azure.com"),
    ("https://management.azure.com//.default", "https://management.azure.com"),
    ("https://graph.microsoft.com/.default", "https://graph.microsoft.com"),
    (f"{BASE}/.default", "https://graph.microsoft.com"),  # the Graph the emulator serves at its own origin
    (f"api://{PORTAL_CLIENT_ID}/.default", f"api://{PORTAL_CLIENT_ID}"),
])
def test_client_credentials_give_an_app_token_for_the_resource(idp, scope, audience):
    body = idp.token(grant_type="client_credentials", scope=scope).json
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == audience
    assert claims["appid"] == PORTAL_CLIENT_ID
    assert claims["oid"] == "0d3b6a9e-0000-4000-8000-00000000a001"
    assert claims["tid"] == CONTOSO
    assert claims["idtyp"] == "app"
    # Graph tokens carry the Graph application permissions granted to the app; other resources' none.
    assert claims["roles"] == (["GroupMember.Read.All"] if "graph" in audience else [])
    assert body["expires_in"] == 3600


def test_client_credentials_refuse_a_wrong_secret_scope_or_resource(idp):
    wrong = idp.token(grant_type="client_credentials", scope="https://management.azure.com/.default",
                      client_secret="not-it")
    assert_entra_error(wrong, 401, "invalid_client", 7000215)
    delegated_scope = "https://management.azure.com/user_impersonation"
    assert_entra_error(idp.token(grant_type="client_credentials", scope=delegated_scope), 400, "invalid_scope", 1002012)
    assert_entra_error(idp.token(grant_type="client_credentials", scope="https://vault.example/.default"),
                       400, "invalid_resource", 500011)
    assert_entra_error(idp.token(grant_type="client_credentials", client_id="nope",
                                 scope="https://management.azure.com/.default"), 400, "unauthorized_client", 700016)


# --- multi-tenant authority -----------------------------------------------------------------------------------
def test_organizations_lists_users_of_every_tenant_with_the_app_and_issues_their_tenants_tokens(idp):
    html = idp.authorize(tenant="organizations").text
    assert "alice@contoso.example" in html
    assert "mallory@fabrikam.example" in html
    code = idp.choose("5b1f2d3c-0000-4000-8000-00000000f001", tenant="organizations")["code"]
    body = idp.exchange(code, tenant="organizations").json
    assert idp.verify_id_token(body["id_token"], tenant=FABRIKAM)["tid"] == FABRIKAM
    refused = idp.token("organizations", grant_type="client_credentials",
                        scope="https://management.azure.com/.default")
    assert refused.status_code == 400


# --- logout ---------------------------------------------------------------------------------------------------
def test_logout_returns_to_a_registered_uri_or_says_signed_out(idp):
    back = idp.get(f"/{CONTOSO}/oauth2/v2.0/logout", query_string={"post_logout_redirect_uri": REDIRECT})
    assert back.status_code == 302
    assert back.headers["Location"] == REDIRECT
    stay = idp.get(f"/{CONTOSO}/oauth2/v2.0/logout",
                   query_string={"post_logout_redirect_uri": "https://attacker.example/"})
    assert stay.status_code == 200
    assert "signed out" in stay.text
    assert "Location" not in stay.headers
