"""The emulated Entra ID's SSO session over HTTPS, in the real emulator process: an interactive sign-in sets a signed
session cookie, ``prompt=none`` answers silently for its user, sign-out ends it."""
from __future__ import annotations

import re
import secrets

import pytest
import requests

from emulator.entra.sso import COOKIE
from emulator.scenarios.identities import CONTOSO, FABRIKAM, PORTAL_CLIENT_ID, PORTAL_SECRET, demo_identities
from tests.emulator.entra_helpers import (
    ALICE,
    ALICE_NOT_ASSIGNED,
    OSCAR,
    REDIRECT,
    query_of,
    relying_party_verify,
    s256,
)

NO_USER = "AADSTS50058: A silent sign-in request was sent but no user is signed in."
NO_MATCH = ("AADSTS50058: A silent sign-in request was sent but none of the currently signed in user(s) match the "
            "requested login hint.")


class Browser:
    """One browser's cookies, walking the sign-in page, ``prompt=none`` and the token endpoint of an emulator."""

    def __init__(self, emu) -> None:
        self.emu = emu
        self.session = requests.Session()
        self.new_request()

    def get(self, url: str, **kwargs) -> requests.Response:
        return self.session.get(url, verify=self.emu.ca_pem, timeout=30, allow_redirects=False, **kwargs)

    def post(self, url: str, **kwargs) -> requests.Response:
        return self.session.post(url, verify=self.emu.ca_pem, timeout=30, allow_redirects=False, **kwargs)

    def new_request(self, state: str = "st-1") -> None:
        """Fresh PKCE verifier, nonce and ``state``, as an app sends for each authorize request."""
        self.verifier, self.nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(12)
        self.params = {"client_id": PORTAL_CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code",
                       "scope": "openid profile email offline_access", "state": state, "nonce": self.nonce,
                       "code_challenge": s256(self.verifier), "code_challenge_method": "S256"}

    def authorize_url(self, tenant: str = CONTOSO) -> str:
        return f"{self.emu.url}/{tenant}/oauth2/v2.0/authorize"

    def choose(self, oid: str = ALICE, **form) -> requests.Response:
        return self.post(self.authorize_url(), data={**self.params, "user_oid": oid, **form})

    def silent(self, tenant: str = CONTOSO, **overrides) -> requests.Response:
        return self.get(self.authorize_url(tenant), params={**self.params, "prompt": "none", **overrides})

    def silent_answer(self, **overrides) -> dict[str, str]:
        response = self.silent(**overrides)
        assert response.status_code == 302 and response.headers["Location"].startswith(REDIRECT), response.text
        return query_of(response.headers["Location"])

    def exchange(self, code: str, tenant: str = CONTOSO) -> requests.Response:
        return self.post(f"{self.emu.url}/{tenant}/oauth2/v2.0/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": self.verifier, "client_id": PORTAL_CLIENT_ID, "client_secret": PORTAL_SECRET})

    def id_token_claims(self, code: str, tenant: str = CONTOSO) -> dict:
        response = self.exchange(code, tenant)
        assert response.status_code == 200, response.text
        base = f"{self.emu.url}/{tenant}"
        jwks = self.get(f"{base}/discovery/v2.0/keys").json()
        return relying_party_verify(response.json()["id_token"], jwks, issuer=f"{base}/v2.0",
                                    client_id=PORTAL_CLIENT_ID, nonce=self.nonce)

    def sign_in(self, oid: str = ALICE) -> requests.Response:
        response = self.choose(oid)
        assert response.status_code == 302 and "code" in query_of(response.headers["Location"]), response.text
        self.new_request("st-2")
        return response


@pytest.fixture
def browser(fresh_emulator) -> Browser:
    return Browser(fresh_emulator)


def assert_login_required(response: requests.Response, description: str) -> None:
    assert response.status_code == 302 and response.headers["Location"].startswith(REDIRECT)
    query = query_of(response.headers["Location"])
    assert (query["error"], query["error_description"], query["state"]) == ("login_required", description, "st-2")
    assert "code" not in query


def test_a_sign_in_sets_a_signed_session_cookie_and_prompt_none_then_answers_with_a_code_for_that_user(browser):
    signed_in = browser.sign_in(ALICE)
    name_value, *attributes = signed_in.headers["Set-Cookie"].split("; ")
    assert name_value.startswith(f"{COOKIE}=") and len(name_value) > 60
    assert {a.split("=")[0].lower() for a in attributes} == {"secure", "httponly", "path", "samesite"}  # no expiry
    assert {"Secure", "HttpOnly", "Path=/", "SameSite=None"} == set(attributes)

    callback = browser.silent_answer()  # no picker: straight back to the app
    assert (callback["state"], set(callback)) == ("st-2", {"code", "state", "session_state"})
    claims = browser.id_token_claims(callback["code"])
    assert (claims["tid"], claims["oid"], claims["preferred_username"]) == (CONTOSO, ALICE, "alice@contoso.example")
    assert claims["nonce"] == browser.nonce


def test_prompt_none_posts_the_code_in_form_post_mode(browser):
    browser.sign_in(ALICE)
    page = browser.silent(response_mode="form_post")
    assert page.status_code == 200 and f'action="{REDIRECT}"' in page.text
    code = re.search(r'name="code" value="([^"]+)"', page.text)[1]
    assert browser.id_token_claims(code)["oid"] == ALICE


def test_prompt_none_without_a_session_is_login_required(browser):
    browser.new_request("st-2")
    assert_login_required(browser.silent(), NO_USER)


@pytest.mark.parametrize("forge", ["another_user", "bad_signature", "no_signature", "not_base64"])
def test_prompt_none_with_a_tampered_cookie_is_login_required(browser, forge):
    browser.sign_in(OSCAR)
    oscar_payload = browser.session.cookies[COOKIE].partition(".")[0]
    browser.sign_in(ALICE)
    payload, _dot, signature = browser.session.cookies[COOKIE].partition(".")
    forged = {"another_user": f"{oscar_payload}.{signature}", "bad_signature": f"{payload}.{signature[:-2]}AA",
              "no_signature": payload, "not_base64": f"%%%.{signature}"}[forge]
    [cookie] = browser.session.cookies
    browser.session.cookies.set(COOKIE, forged, domain=cookie.domain, path=cookie.path, secure=True)
    assert [c.value for c in browser.session.cookies] == [forged]
    assert_login_required(browser.silent(), NO_USER)


def test_a_login_hint_must_name_the_signed_in_user_in_any_case(browser):
    browser.sign_in(ALICE)
    assert_login_required(browser.silent(login_hint="oscar@contoso.example"), NO_MATCH)
    callback = browser.silent_answer(login_hint="Alice@Contoso.EXAMPLE")
    assert browser.id_token_claims(callback["code"])["oid"] == ALICE


def test_prompt_none_still_checks_the_request_before_the_session(browser):
    browser.sign_in(ALICE)
    refused = browser.silent_answer(code_challenge_method="plain")
    assert refused["error"] == "invalid_request" and refused["error_description"].startswith("AADSTS9002325")
    page = browser.silent(redirect_uri="https://attacker.example/callback")
    assert page.status_code == 400 and "Location" not in page.headers and "AADSTS50011" in page.text


def test_a_user_taken_off_the_app_after_signing_in_is_refused_silently_with_aadsts50105(browser):
    browser.sign_in(ALICE)
    browser.emu.control("PUT", f"entra/users/{ALICE}", json={"assigned": False})
    query = browser.silent_answer()
    assert (query["error"], query["state"]) == ("access_denied", "st-2") and "code" not in query
    assert ALICE_NOT_ASSIGNED.fullmatch(query["error_description"]), query["error_description"]
    browser.emu.control("PUT", f"entra/users/{ALICE}", json={"assigned": True})
    assert "code" in browser.silent_answer()


def test_a_user_no_longer_in_the_tenant_or_asked_of_another_tenant_is_not_signed_in(browser):
    browser.sign_in(ALICE)
    assert_login_required(browser.silent(FABRIKAM), NO_USER)
    assert "code" in browser.silent_answer(tenant="organizations")
    tenants = demo_identities()
    tenants[0]["users"] = [u for u in tenants[0]["users"] if u["oid"] != ALICE]
    browser.emu.reset({"identities": tenants, "subscriptions": []})
    assert_login_required(browser.silent(), NO_USER)


def test_a_cancelled_or_refused_sign_in_sets_no_cookie(browser):
    cancelled = browser.choose(ALICE, cancel="1")
    assert query_of(cancelled.headers["Location"])["error"] == "access_denied"
    browser.emu.control("PUT", f"entra/users/{OSCAR}", json={"assigned": False})
    refused = browser.choose(OSCAR)
    assert query_of(refused.headers["Location"])["error"] == "access_denied"
    assert "Set-Cookie" not in cancelled.headers and "Set-Cookie" not in refused.headers
    assert not browser.session.cookies
    browser.new_request("st-2")
    assert_login_required(browser.silent(), NO_USER)


def test_the_latest_sign_in_is_the_session(browser):
    browser.sign_in(ALICE)
    browser.sign_in(OSCAR)
    assert browser.id_token_claims(browser.silent_answer()["code"])["oid"] == OSCAR


@pytest.mark.parametrize("back", [REDIRECT, None])
def test_sign_out_ends_the_session(browser, back):
    browser.sign_in(ALICE)
    query = {"post_logout_redirect_uri": back} if back else {}
    signed_out = browser.get(f"{browser.emu.url}/{CONTOSO}/oauth2/v2.0/logout", params=query)
    assert signed_out.status_code == (302 if back else 200)
    assert signed_out.headers["Set-Cookie"].startswith(f"{COOKIE}=;")
    assert not browser.session.cookies
    assert_login_required(browser.silent(), NO_USER)
