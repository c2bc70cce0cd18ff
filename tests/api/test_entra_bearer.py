"""Entra ID bearer tokens: a real access token from the emulator's code flow works; others get 401."""
from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from accounts.config import DEMO_CLIENT_ID, DEMO_TENANT_ID
from emulator.entra.keys import load_or_create
from emulator.scenarios.identities import PORTAL_REDIRECT, PORTAL_SECRET
from tests.api.conftest import ApiClient
from tests.plugins.personas import PERSONAS

pytestmark = pytest.mark.django_db
ME = "/api/v1/me/"
API_SCOPE = f"api://{DEMO_CLIENT_ID}/access_as_user"


def user_access_token(emu, oid: str, scope: str = API_SCOPE) -> str:
    """A delegated access token for ``oid`` through the emulator's real authorization code flow (PKCE)."""
    return user_tokens(emu, oid, scope)["access_token"]


def user_tokens(emu, oid: str, scope: str = API_SCOPE) -> dict:
    """The token endpoint's answer (access and ID token) of the emulator's real authorization code flow."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"client_id": DEMO_CLIENT_ID, "redirect_uri": PORTAL_REDIRECT, "response_type": "code",
              "scope": f"openid {scope}", "state": "s", "nonce": "n", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    answer = requests.post(f"{emu.url}/{DEMO_TENANT_ID}/oauth2/v2.0/authorize", data={**params, "user_oid": oid},
                           allow_redirects=False, verify=emu.ca_pem, timeout=10)
    assert answer.status_code == 302, answer.text
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    token = requests.post(f"{emu.url}/{DEMO_TENANT_ID}/oauth2/v2.0/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": PORTAL_REDIRECT,
        "code_verifier": verifier, "client_id": DEMO_CLIENT_ID, "client_secret": PORTAL_SECRET},
        verify=emu.ca_pem, timeout=10)
    assert token.status_code == 200, token.text
    return token.json()


def forged(emu, **changes) -> str:
    """A token signed with the emulator's own key but with ``changes`` to a valid token's claims."""
    now = int(time.time())
    claims = {"aud": f"api://{DEMO_CLIENT_ID}", "iss": f"https://sts.windows.net/{DEMO_TENANT_ID}/",
              "tid": DEMO_TENANT_ID, "oid": PERSONAS["requester"].oid, "scp": "access_as_user", "idtyp": "user",
              "upn": "alice@contoso.example", "iat": now, "nbf": now, "exp": now + 3600, "uti": uuid.uuid4().hex}
    claims.update(changes)
    key = load_or_create(emu.cert_dir)
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


def test_a_real_entra_token_acts_as_the_signed_in_user(entra_settings, emulator, requester):
    token = user_access_token(emulator, PERSONAS["requester"].oid)
    response = ApiClient(token).get(ME)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["username"], body["authentication"]) == ("alice@contoso.example", "entra")
    assert {r["role"] for r in body["roles"]} == {"requester"}
    assert ApiClient(token).get("/api/v1/audit/events/").status_code == 403  # only the user's roles


def test_a_user_who_never_signed_in_to_the_portal_is_told_to(entra_settings, emulator, persona_mappings):
    token = user_access_token(emulator, PERSONAS["auditor"].oid)
    response = ApiClient(token).get(ME)
    assert response.status_code == 401
    assert "sign in once" in response.json()["detail"]


def test_a_token_of_someone_whose_portal_sign_in_is_too_old_gets_401(entra_settings, emulator, requester):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import SignInClaims

    token = user_access_token(emulator, PERSONAS["requester"].oid)
    assert ApiClient(token).get(ME).status_code == 200
    too_old = timezone.now() - timedelta(seconds=entra_settings.ENTRA_SIGN_IN_MAX_AGE + 60)
    SignInClaims.objects.filter(user=requester).update(signed_in_at=too_old)  # roles may have changed since
    response = ApiClient(token).get(ME)
    assert response.status_code == 401 and "sign in again in the browser" in response.json()["detail"]


def test_a_token_for_another_audience_gets_401(entra_settings, emulator, requester):
    token = user_access_token(emulator, PERSONAS["requester"].oid, "https://management.azure.com/user_impersonation")
    response = ApiClient(token).get(ME)
    assert response.status_code == 401 and "another application" in response.json()["detail"]


def test_an_application_token_gets_401(entra_settings, emulator, requester):
    answer = requests.post(f"{emulator.url}/{DEMO_TENANT_ID}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID, "client_secret": PORTAL_SECRET,
        "scope": f"api://{DEMO_CLIENT_ID}/.default"}, verify=emulator.ca_pem, timeout=10)
    assert answer.status_code == 200, answer.text
    response = ApiClient(answer.json()["access_token"]).get(ME)
    assert response.status_code == 401 and "Application tokens" in response.json()["detail"]


@pytest.mark.parametrize(("changes", "reason"), [
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200, "nbf": int(time.time()) - 7200}, "expired"),
    ({"iss": f"https://login.attacker.example/{DEMO_TENANT_ID}/v2.0"}, "issued by"),
    ({"aud": "https://management.azure.com"}, "another application"),
    ({"tid": "00000000-dead-4bad-8bad-000000000bad",
      "iss": "https://sts.windows.net/00000000-dead-4bad-8bad-000000000bad/"}, "may not use this portal"),
])
def test_expired_wrong_issuer_audience_or_tenant_get_401(entra_settings, emulator, requester, changes, reason):
    assert ApiClient(forged(emulator)).get(ME).status_code == 200  # the forgery itself is sound
    response = ApiClient(forged(emulator, **changes)).get(ME)
    assert response.status_code == 401 and reason in response.json()["detail"]


def test_a_token_signed_by_another_key_gets_401(entra_settings, emulator, requester, tmp_path):
    other = load_or_create(tmp_path)
    token = jwt.encode(jwt.decode(forged(emulator), options={"verify_signature": False}), other.private_key,
                       algorithm="RS256", headers={"kid": load_or_create(emulator.cert_dir).kid})
    response = ApiClient(token).get(ME)
    assert response.status_code == 401 and "signature" in response.json()["detail"]


def test_a_sign_in_id_token_is_not_an_api_token(entra_settings, emulator, requester):
    tokens = user_tokens(emulator, PERSONAS["requester"].oid, "profile email")
    response = ApiClient(tokens["id_token"]).get(ME)
    assert response.status_code == 401 and "ID token is not one" in response.json()["detail"]


def test_a_token_for_another_scope_of_the_portal_is_refused(entra_settings, emulator, requester):
    response = ApiClient(forged(emulator, scp="Files.Read")).get(ME)
    assert response.status_code == 401 and "access_as_user" in response.json()["detail"]


def test_unknown_signing_keys_refetch_the_tenants_keys_at_most_once(entra_settings, emulator, requester):
    key = load_or_create(emulator.cert_dir)
    before = len([c for c in emulator.calls() if "keys" in c["path"]])
    for n in range(5):
        stranger = jwt.encode({"sub": str(n)}, key.private_key, algorithm="RS256", headers={"kid": f"unknown-{n}"})
        assert ApiClient(stranger).get(ME).status_code == 401
    fetched = len([c for c in emulator.calls() if "keys" in c["path"]]) - before
    assert 1 <= fetched <= 2  # the cached set, then one forced refresh, never one per request


def fetches(emulator, suffix: str) -> int:
    return sum(c["path"].endswith(suffix) for c in emulator.calls())


# What each document is fetched at: nothing broken is kept, so a spoiled one is fetched again on every call.
FETCHED_AT = {"discovery": "/openid-configuration", "jwks": "/discovery/v2.0/keys"}


@pytest.mark.parametrize(("document", "mode", "reason"), [
    ("discovery", "no_jwks_uri", "jwks_uri None is not an https URL"),
    ("discovery", "jwks_uri_not_a_string", "is not an https URL"),
    ("discovery", "jwks_uri_over_http", "jwks_uri 'http://"),
    ("discovery", "not_an_object", "a JSON list, not an object"),
    ("discovery", "not_json", "not JSON (text/html"),
    ("jwks", "keys_not_a_list", "/discovery/v2.0/keys is unusable: its keys are a JSON dict, not a list"),
    ("jwks", "key_not_an_object", "/discovery/v2.0/keys is unusable: one of its keys is a JSON str, not an object"),
    ("jwks", "wrong_kty", "cannot be read as RS256: Not an RSA key"),
    ("jwks", "no_modulus", "cannot be read as RS256: Not a public or private key"),
    ("jwks", "modulus_not_base64url", "cannot be read as RS256: Unable to construct key from JWK: Invalid base64"),
])
def test_metadata_the_portal_cannot_use_is_a_401_and_is_not_kept(
        entra_settings, emulator, requester, spoil, caplog, document, mode, reason):
    """A discovery document without a usable ``jwks_uri``, or a key set the portal cannot read."""
    token = user_access_token(emulator, PERSONAS["requester"].oid)
    spoil(document, mode)
    before = fetches(emulator, FETCHED_AT[document])
    for _ in range(2):
        response = ApiClient(token).get(ME)
        assert response.status_code == 401 and response["Content-Type"] == "application/json"
        body = response.json()
        assert set(body) == {"detail", "errors"} and "metadata is unusable" in body["detail"], body
    assert fetches(emulator, FETCHED_AT[document]) - before == 2
    assert reason in caplog.text
    assert document == "jwks" or FETCHED_AT[document] in caplog.text  # which document (a key names its kid)

    spoil(document, None)
    assert ApiClient(token).get(ME).status_code == 200


def test_failed_authentications_are_throttled_per_address(settings, db):
    settings.API_THROTTLE_FAILED_AUTH = "3/min"
    for _ in range(3):
        assert ApiClient("jit_not-a-real-token").get(ME).status_code == 401
    answer = ApiClient("jit_not-a-real-token").get(ME)
    assert answer.status_code == 429 and answer.has_header("Retry-After")


def test_a_forged_x_forwarded_for_does_not_escape_the_failed_authentication_throttle(settings, db):
    settings.API_THROTTLE_FAILED_AUTH = "3/min"
    for n in range(3):
        forged = {"HTTP_X_FORWARDED_FOR": f"198.51.100.{n}"}
        assert ApiClient("jit_not-a-real-token").get(ME, **forged).status_code == 401
    answer = ApiClient("jit_not-a-real-token").get(ME, HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert answer.status_code == 429


def test_behind_a_trusted_proxy_failed_authentications_count_per_client(settings, db):
    settings.API_THROTTLE_FAILED_AUTH = "3/min"
    settings.ACCESS_TRUSTED_PROXIES = ["127.0.0.1/32"]
    for _ in range(3):
        assert ApiClient("jit_not-a-real-token").get(ME, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 401
    assert ApiClient("jit_not-a-real-token").get(ME, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429
    assert ApiClient("jit_not-a-real-token").get(ME, HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 401
