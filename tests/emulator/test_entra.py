"""The emulated Entra ID: discovery, JWKS, authorization code flow with PKCE, client credentials, Graph."""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from html import unescape
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential

from emulator.scenarios.identities import CONTOSO, FABRIKAM, PORTAL_CLIENT_ID, PORTAL_SECRET, user_oid

REDIRECT = "http://127.0.0.1:45678/accounts/oidc/entra/login/callback/"
ALICE = user_oid(1)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class Flow:
    """A browser-less walk through the sign-in page and the token endpoint."""

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
        location = response.headers["Location"]
        assert location.startswith(REDIRECT)
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    def exchange(self, code: str, verifier: str | None = None) -> requests.Response:
        return self.post(f"{self.base}/oauth2/v2.0/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier or self.verifier, "client_id": PORTAL_CLIENT_ID,
            "client_secret": PORTAL_SECRET})

    def jwks(self) -> jwt.PyJWKSet:
        return jwt.PyJWKSet.from_dict(self.get(f"{self.base}/discovery/v2.0/keys").json())

    def decode(self, token: str) -> dict:
        key = self.jwks()[jwt.get_unverified_header(token)["kid"]]
        return jwt.decode(token, key.key, algorithms=["RS256"], audience=PORTAL_CLIENT_ID,
                          issuer=f"{self.emu.url}/{self.tenant}/v2.0")


@pytest.fixture
def flow(fresh_emulator) -> Flow:
    requests.delete(f"{fresh_emulator.url}/_emulator/entra/next-id-token", verify=fresh_emulator.ca_pem, timeout=30)
    return Flow(fresh_emulator)


def test_discovery_names_this_tenant_and_pkce(flow):
    doc = flow.get(f"{flow.base}/v2.0/.well-known/openid-configuration").json()
    assert doc["issuer"] == f"{flow.emu.url}/{CONTOSO}/v2.0"
    assert doc["token_endpoint"] == f"{flow.base}/oauth2/v2.0/token"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert flow.get(f"{flow.emu.url}/no-such-tenant/v2.0/.well-known/openid-configuration").status_code == 400


def test_the_sign_in_page_lists_the_tenants_users(flow):
    page = flow.page(login_hint="bob@contoso.example")
    assert page.status_code == 200
    for name in ("alice@contoso.example", "Bob Security Admin", "oscar@contoso.example", "Cancel"):
        assert name in page.text
    assert re.search(r'data-username="bob@contoso.example"\s+class="hint" autofocus', page.text)


def test_a_full_code_flow_with_pkce_yields_signed_tokens_with_the_claims(flow):
    callback = flow.choose(ALICE)
    assert callback["state"] == "st-123"
    response = flow.exchange(callback["code"])
    assert response.status_code == 200, response.text
    body = response.json()
    claims = flow.decode(body["id_token"])
    assert claims["tid"] == CONTOSO
    assert claims["oid"] == ALICE
    assert claims["preferred_username"] == "alice@contoso.example"
    assert claims["nonce"] == flow.nonce
    assert claims["roles"] == ["JIT.Requester"]
    assert claims["groups"] == ["9c1d2e3f-0000-4000-8000-000000000901"]
    assert body["refresh_token"]


def test_a_code_is_redeemed_once_and_only_with_its_verifier(flow):
    code = flow.choose()["code"]
    wrong = flow.exchange(code, verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400
    assert "AADSTS501481" in wrong.json()["error_description"]
    code = flow.choose()["code"]
    assert flow.exchange(code).status_code == 200
    again = flow.exchange(code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_pkce_is_required(flow):
    response = flow.page(code_challenge="", code_challenge_method="")
    assert response.status_code == 302
    assert "error=invalid_request" in response.headers["Location"]


def test_cancel_redirects_with_access_denied(flow):
    response = flow.post(f"{flow.base}/oauth2/v2.0/authorize", data={**flow.params, "cancel": "1"})
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["st-123"]


def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(flow):
    response = flow.page(redirect_uri="https://attacker.example/callback")
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "AADSTS50011" in response.text


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("tampered", jwt.InvalidSignatureError),
        ("expired", jwt.ExpiredSignatureError),
        ("wrong_audience", jwt.InvalidAudienceError),
        ("wrong_issuer", jwt.InvalidIssuerError),
    ],
)
def test_each_spoiled_id_token_fails_verification(flow, mode, error):
    requests.post(f"{flow.emu.url}/_emulator/entra/next-id-token", json={"mode": mode}, verify=flow.emu.ca_pem,
                  timeout=30).raise_for_status()
    token = flow.exchange(flow.choose()["code"]).json()["id_token"]
    with pytest.raises(error):
        flow.decode(token)
    # The knob spoils one token only.
    assert flow.decode(flow.exchange(flow.choose()["code"]).json()["id_token"])["tid"] == CONTOSO


@pytest.mark.parametrize("mode", ["wrong_tenant", "no_nonce", "bad_nonce"])
def test_claim_spoiling_modes_change_the_claims(flow, mode):
    requests.post(f"{flow.emu.url}/_emulator/entra/next-id-token", json={"mode": mode}, verify=flow.emu.ca_pem,
                  timeout=30).raise_for_status()
    token = flow.exchange(flow.choose()["code"]).json()["id_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    if mode == "wrong_tenant":
        assert claims["tid"] == FABRIKAM
        assert claims["iss"].endswith(f"/{FABRIKAM}/v2.0")
    elif mode == "no_nonce":
        assert "nonce" not in claims
    else:
        assert claims["nonce"] != flow.nonce


def test_refresh_reflects_a_role_change(flow):
    body = flow.exchange(flow.choose()["code"]).json()
    requests.put(f"{flow.emu.url}/_emulator/entra/users/{ALICE}", json={"app_roles": ["JIT.Auditor"]},
                 verify=flow.emu.ca_pem, timeout=30).raise_for_status()
    refreshed = flow.post(f"{flow.base}/oauth2/v2.0/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": PORTAL_CLIENT_ID,
        "client_secret": PORTAL_SECRET})
    assert refreshed.status_code == 200
    assert flow.decode(refreshed.json()["id_token"])["roles"] == ["JIT.Auditor"]


def test_graph_me_and_groups_need_a_graph_token(flow):
    access = flow.exchange(flow.choose()["code"]).json()["access_token"]
    me = flow.get(f"{flow.emu.url}/v1.0/me", headers={"Authorization": f"Bearer {access}"})
    assert me.json()["userPrincipalName"] == "alice@contoso.example"
    groups = flow.get(f"{flow.emu.url}/v1.0/me/transitiveMemberOf", headers={"Authorization": f"Bearer {access}"})
    assert [g["displayName"] for g in groups.json()["value"]] == ["JIT requesters - web"]
    assert flow.get(f"{flow.emu.url}/v1.0/me").status_code == 401


def test_the_portal_identity_gets_an_arm_token_through_azure_identity(fresh_emulator):
    credential = ClientSecretCredential(CONTOSO, PORTAL_CLIENT_ID, PORTAL_SECRET, authority=fresh_emulator.url,
                                        disable_instance_discovery=True, connection_verify=fresh_emulator.ca_pem)
    token = credential.get_token("https://management.azure.com/.default").token
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "https://management.azure.com"
    assert claims["idtyp"] == "app"
    wrong = ClientSecretCredential(CONTOSO, PORTAL_CLIENT_ID, "not-the-secret", authority=fresh_emulator.url,
                                   disable_instance_discovery=True, connection_verify=fresh_emulator.ca_pem)
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        wrong.get_token("https://management.azure.com/.default")


def test_user_supplied_names_are_escaped_on_the_sign_in_page(emulator_factory):
    from emulator.scenarios.identities import demo_identities

    tenants = demo_identities()
    tenants[0]["users"][0]["display_name"] = "<script>alert(1)</script>"
    emu = emulator_factory({"identities": tenants, "subscriptions": []})
    page = Flow(emu).page()
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert unescape("&lt;script&gt;") == "<script>"
