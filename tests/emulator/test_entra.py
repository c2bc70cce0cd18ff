"""The emulated Entra ID over HTTPS, in the real emulator process: sign-in flow, spoil knobs, azure-identity."""
from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential
from azure.mgmt.security import SecurityCenter

from emulator.scenarios.identities import (
    CONTOSO,
    PORTAL_CLIENT_ID,
    PORTAL_SECRET,
    PROD_SUBSCRIPTION,
    WEB_REQUESTERS_GROUP,
    demo_identities,
)
from tests.emulator.entra_helpers import ALICE, REDIRECT, NonceMismatch, query_of, relying_party_verify, s256

ARM_SCOPE = "https://management.azure.com/.default"


class Flow:
    """A browser-less walk through the sign-in page and the token endpoint of a running emulator."""

    def __init__(self, emu, tenant: str = CONTOSO) -> None:
        self.emu, self.tenant = emu, tenant
        self.base = f"{emu.url}/{tenant}"
        self.verifier = secrets.token_urlsafe(48)
        self.nonce = secrets.token_urlsafe(12)
        self.params = {"client_id": PORTAL_CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code",
                       "scope": "openid profile email offline_access", "state": "st-123", "nonce": self.nonce,
                       "code_challenge": s256(self.verifier), "code_challenge_method": "S256"}

    def get(self, url: str, **kwargs) -> requests.Response:
        return requests.get(url, verify=self.emu.ca_pem, timeout=30, allow_redirects=False, **kwargs)

    def post(self, url: str, **kwargs) -> requests.Response:
        return requests.post(url, verify=self.emu.ca_pem, timeout=30, allow_redirects=False, **kwargs)

    def page(self, **overrides) -> requests.Response:
        return self.get(f"{self.base}/oauth2/v2.0/authorize", params={**self.params, **overrides})

    def choose(self, oid: str = ALICE) -> dict:
        response = self.post(f"{self.base}/oauth2/v2.0/authorize", data={**self.params, "user_oid": oid})
        assert response.status_code == 302, response.text
        assert response.headers["Location"].startswith(REDIRECT)
        return query_of(response.headers["Location"])

    def exchange(self, code: str, verifier: str | None = None) -> requests.Response:
        return self.post(f"{self.base}/oauth2/v2.0/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier or self.verifier, "client_id": PORTAL_CLIENT_ID,
            "client_secret": PORTAL_SECRET})

    def sign_in(self, oid: str = ALICE) -> dict:
        response = self.exchange(self.choose(oid)["code"])
        assert response.status_code == 200, response.text
        return response.json()

    def discovery(self) -> dict:
        return self.get(f"{self.base}/v2.0/.well-known/openid-configuration").json()

    def verify(self, id_token: str) -> dict:
        doc = self.discovery()
        return relying_party_verify(id_token, self.get(doc["jwks_uri"]).json(), issuer=doc["issuer"],
                                    client_id=PORTAL_CLIENT_ID, nonce=self.nonce)

    def knob(self, method: str, path: str, **kwargs) -> requests.Response:
        response = requests.request(method, f"{self.emu.url}/_emulator/entra/{path}", verify=self.emu.ca_pem,
                                    timeout=30, **kwargs)
        response.raise_for_status()
        return response


@pytest.fixture
def flow(fresh_emulator) -> Flow:
    flow = Flow(fresh_emulator)
    flow.knob("DELETE", "next-id-token")
    flow.knob("DELETE", "next-id-token-claims")
    return flow


def test_discovery_names_this_tenants_endpoints_over_https(flow):
    doc = flow.discovery()
    assert doc["issuer"] == f"{flow.emu.url}/{CONTOSO}/v2.0"
    assert doc["token_endpoint"] == f"{flow.base}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{flow.base}/oauth2/v2.0/authorize"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    unknown = flow.get(f"{flow.emu.url}/no-such-tenant/v2.0/.well-known/openid-configuration")
    assert unknown.status_code == 400
    assert unknown.json()["error_description"].startswith("AADSTS90002")


def test_the_sign_in_page_lists_the_tenants_users(flow):
    page = flow.page(login_hint="bob@contoso.example")
    assert page.status_code == 200
    for name in ("alice@contoso.example", "Bob Security Admin", "oscar@contoso.example", "Cancel"):
        assert name in page.text
    assert re.search(r'data-username="bob@contoso.example"\s+class="hint" autofocus', page.text)


def test_a_full_code_flow_with_pkce_yields_tokens_the_jwks_verifies(flow):
    callback = flow.choose(ALICE)
    assert callback["state"] == "st-123"
    body = flow.exchange(callback["code"]).json()
    claims = flow.verify(body["id_token"])
    assert (claims["tid"], claims["oid"], claims["preferred_username"]) == (CONTOSO, ALICE, "alice@contoso.example")
    assert claims["nonce"] == flow.nonce
    assert claims["roles"] == ["JIT.Requester"]
    assert claims["groups"] == [WEB_REQUESTERS_GROUP]
    assert body["refresh_token"]


def test_a_code_is_redeemed_once_and_only_with_its_verifier(flow):
    wrong = flow.exchange(flow.choose()["code"], verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400
    assert wrong.json()["error_description"].startswith("AADSTS501481")
    code = flow.choose()["code"]
    assert flow.exchange(code).status_code == 200
    again = flow.exchange(code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_cancel_redirects_with_access_denied(flow):
    response = flow.post(f"{flow.base}/oauth2/v2.0/authorize", data={**flow.params, "cancel": "1"})
    query = query_of(response.headers["Location"])
    assert (query["error"], query["state"]) == ("access_denied", "st-123")


def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(flow):
    response = flow.page(redirect_uri="https://attacker.example/callback")
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "AADSTS50011" in response.text


@pytest.mark.parametrize(("mode", "failure"), [
    ("tampered", jwt.InvalidSignatureError),
    ("expired", jwt.ExpiredSignatureError),
    ("wrong_tenant", jwt.InvalidIssuerError),
    ("wrong_audience", jwt.InvalidAudienceError),
    ("wrong_issuer", jwt.InvalidIssuerError),
    ("no_nonce", jwt.MissingRequiredClaimError),
    ("bad_nonce", NonceMismatch),
])
def test_each_spoiled_id_token_fails_verification(flow, mode, failure):
    flow.knob("POST", "next-id-token", json={"mode": mode})
    with pytest.raises(failure):
        flow.verify(flow.sign_in()["id_token"])
    assert flow.verify(flow.sign_in()["id_token"])["tid"] == CONTOSO  # the knob spoils one token only


def test_the_claims_knob_sets_and_removes_claims_of_one_validly_signed_token(flow):
    flow.knob("POST", "next-id-token-claims", json={"claims": {"name": ["Alice"], "email": None}})
    claims = flow.verify(flow.sign_in()["id_token"])
    assert claims["name"] == ["Alice"] and "email" not in claims
    assert flow.verify(flow.sign_in()["id_token"])["name"] == "Alice Requester"  # one token only
    with pytest.raises(requests.HTTPError):
        flow.knob("POST", "next-id-token-claims", json={"claims": ["name"]})


def test_refresh_reflects_a_role_change(flow):
    body = flow.sign_in()
    flow.knob("PUT", f"users/{ALICE}", json={"app_roles": ["JIT.Auditor"]})
    refreshed = flow.post(f"{flow.base}/oauth2/v2.0/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": PORTAL_CLIENT_ID,
        "client_secret": PORTAL_SECRET})
    assert refreshed.status_code == 200
    claims = jwt.decode(refreshed.json()["id_token"], options={"verify_signature": False})
    assert claims["roles"] == ["JIT.Auditor"]


def test_graph_me_and_groups_need_a_graph_token(flow):
    access = flow.sign_in()["access_token"]
    me = flow.get(f"{flow.emu.url}/v1.0/me", headers={"Authorization": f"Bearer {access}"})
    assert me.json()["userPrincipalName"] == "alice@contoso.example"
    groups = flow.get(f"{flow.emu.url}/v1.0/me/transitiveMemberOf", headers={"Authorization": f"Bearer {access}"})
    assert [g["displayName"] for g in groups.json()["value"]] == ["JIT requesters - web"]
    assert flow.get(f"{flow.emu.url}/v1.0/me").status_code == 401
    arm_with_graph_token = flow.get(f"{flow.emu.url}/subscriptions/{PROD_SUBSCRIPTION}/providers/Microsoft.Security/"
                                    "jitNetworkAccessPolicies", params={"api-version": "2020-01-01"},
                                    headers={"Authorization": f"Bearer {access}"})
    assert arm_with_graph_token.status_code == 401


def test_azure_identity_gets_an_arm_token_that_arm_accepts(fresh_emulator):
    credential = ClientSecretCredential(CONTOSO, PORTAL_CLIENT_ID, PORTAL_SECRET, authority=fresh_emulator.url,
                                        disable_instance_discovery=True, connection_verify=fresh_emulator.ca_pem)
    token = credential.get_token(ARM_SCOPE).token
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["aud"], claims["idtyp"], claims["appid"]) == ("https://management.azure.com", "app",
                                                                 PORTAL_CLIENT_ID)
    paths = [call["path"] for call in fresh_emulator.calls()]
    assert f"/{CONTOSO}/v2.0/.well-known/openid-configuration" in paths  # MSAL's discovery of the tenant
    assert f"/{CONTOSO}/oauth2/v2.0/token" in paths
    client = SecurityCenter(credential, PROD_SUBSCRIPTION, base_url=fresh_emulator.url,
                            credential_scopes=[ARM_SCOPE], connection_verify=fresh_emulator.ca_pem)
    assert {policy.name for policy in client.jit_network_access_policies.list()} == {"default"}


def test_azure_identity_with_a_wrong_secret_fails_with_aadsts7000215(fresh_emulator):
    wrong = ClientSecretCredential(CONTOSO, PORTAL_CLIENT_ID, "not-the-secret", authority=fresh_emulator.url,
                                   disable_instance_discovery=True, connection_verify=fresh_emulator.ca_pem)
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        wrong.get_token(ARM_SCOPE)


def test_the_signing_key_survives_a_restart_and_names_are_escaped(emulator_factory):
    tenants = demo_identities()
    tenants[0]["users"][0]["display_name"] = "<script>alert(1)</script>"
    emu = emulator_factory({"identities": tenants, "subscriptions": []})
    flow = Flow(emu)
    page = flow.page()
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    kid = flow.get(f"{flow.base}/discovery/v2.0/keys").json()["keys"][0]["kid"]
    token = flow.sign_in()["id_token"]
    emu.restart()
    flow = Flow(emu)
    assert flow.get(f"{flow.base}/discovery/v2.0/keys").json()["keys"][0]["kid"] == kid
    jwks = jwt.PyJWKSet.from_dict(flow.get(f"{flow.base}/discovery/v2.0/keys").json())
    claims = jwt.decode(token, jwks[kid].key, algorithms=["RS256"], audience=PORTAL_CLIENT_ID)
    assert urlsplit(claims["iss"]).path == f"/{CONTOSO}/v2.0"
