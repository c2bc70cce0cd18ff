"""Silent re-validation: after ``ENTRA_REVALIDATE_SECONDS`` a signed-in user's next page goes through Entra ID's
authorize endpoint with ``prompt=none``; the session carries on with their current roles, or ends."""
from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.plugins.personas import PERSONAS

pytestmark = pytest.mark.django_db(transaction=True)
PAGE = {"HTTP_ACCEPT": "text/html,application/xhtml+xml", "HTTP_SEC_FETCH_DEST": "document"}
OID = PERSONAS["requester"].oid


class Browser:
    """The test client for the portal, and one ``requests`` session for Entra ID (so its sign-in cookie lasts, as a
    browser's does)."""

    def __init__(self, emulator) -> None:
        self.portal = Client(SERVER_NAME="127.0.0.1")  # a loopback host, which the emulator takes as redirect URI
        self.entra = requests.Session()
        self.ca = str(emulator.ca_pem)  # per call: REQUESTS_CA_BUNDLE in the environment would win over the session's

    def sign_in(self, oid: str = OID) -> None:
        """The interactive sign-in: the portal's redirect, the emulator's account picker, the callback."""
        start = self.portal.post(reverse("openid_connect_login", kwargs={"provider_id": "entra"}))
        authorize = urlsplit(start["Location"])
        picked = self.entra.post(f"{authorize.scheme}://{authorize.netloc}{authorize.path}",
                                 data=dict(parse_qsl(authorize.query)) | {"user_oid": oid}, verify=self.ca,
                                 allow_redirects=False, timeout=10)
        assert picked.status_code == 302, picked.text[:300]
        assert self.portal.get(self._local(picked.headers["Location"])).status_code == 302

    def open(self, path: str):
        """Open ``path`` as a browser navigates, following the portal's redirects and Entra ID's (silent) one;
        returns the last answer and the authorize URL it went through (or ``None``)."""
        response, authorize = self.portal.get(path, **PAGE), None
        for _hop in range(10):  # a loop of redirects fails the test rather than hang it
            if response.status_code != 302:
                return response, authorize
            location = response["Location"]
            if location.startswith("https://"):
                authorize = location
                answer = self.entra.get(location, verify=self.ca, allow_redirects=False, timeout=10)
                assert answer.status_code == 302, answer.text[:300]
                location = self._local(answer.headers["Location"])
            response = self.portal.get(location, **PAGE)
        raise AssertionError(f"{path}: still redirected after 10 hops, to {response['Location']}")

    @staticmethod
    def _local(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.path}?{parts.query}" if parts.query else parts.path


def age_sign_in(seconds: float) -> None:
    from accounts.models import SignInClaims

    SignInClaims.objects.update(signed_in_at=timezone.now() - timedelta(seconds=seconds))


@pytest.fixture
def browser(entra_settings, fresh_emulator, persona_mappings):
    entra_settings.ENTRA_REVALIDATE_SECONDS = 3600
    signed_in = Browser(fresh_emulator)
    signed_in.sign_in()
    return signed_in


def test_a_page_is_not_revalidated_before_the_interval(browser):
    age_sign_in(3500)
    response, authorize = browser.open(reverse("my_access"))
    assert response.status_code == 200 and authorize is None


def test_past_the_interval_the_next_page_goes_through_a_silent_sign_in_and_opens(browser):
    from accounts.models import SignInClaims

    age_sign_in(3700)
    response, authorize = browser.open(reverse("policies:requests") + "?state=open")
    assert response.status_code == 200
    assert response.wsgi_request.path == reverse("policies:requests")
    assert response.wsgi_request.GET["state"] == "open"
    query = parse_qs(urlsplit(authorize).query)
    assert query["prompt"] == ["none"] and query["login_hint"] == ["alice@contoso.example"]
    assert SignInClaims.objects.get().signed_in_at > timezone.now() - timedelta(seconds=60)
    # recorded again: the next page opens at once
    assert browser.open(reverse("my_access"))[1] is None


def test_a_role_removed_in_entra_id_is_gone_after_the_silent_sign_in(browser, fresh_emulator):
    from accounts.models import SignInClaims

    assert "JIT.Requester" in SignInClaims.objects.get().app_roles
    fresh_emulator.control("PUT", f"entra/users/{OID}", json={"app_roles": []})
    age_sign_in(3700)
    response, _ = browser.open(reverse("my_access"))
    assert response.status_code == 200
    assert SignInClaims.objects.get().app_roles == []


def test_when_entra_id_needs_the_user_the_session_ends_and_sign_in_leads_back(browser):
    browser.entra.cookies.clear()  # their Entra ID session ended
    age_sign_in(3700)
    response, authorize = browser.open(reverse("policies:requests"))
    assert authorize is not None
    assert response.status_code == 200 and response.wsgi_request.path == reverse("login")
    assert response.wsgi_request.GET["next"] == reverse("policies:requests")
    assert "Your Entra ID session has ended. Sign in again to continue." in response.content.decode()
    assert "_auth_user_id" not in browser.portal.session
    browser.sign_in()
    assert browser.open(reverse("policies:requests"))[0].status_code == 200


def test_a_user_taken_off_the_app_is_signed_out_everywhere_and_told_why(browser, fresh_emulator):
    from accounts.models import SignInClaims, User
    from api import services as api_services
    from tests.api.conftest import ApiClient

    other = Browser(fresh_emulator)
    other.sign_in()  # a second session of the same user
    token = ApiClient(api_services.token_create(actor=User.objects.get(entra_object_id=OID), name="ci").secret)
    assert token.get("/api/v1/vms/").status_code == 200
    fresh_emulator.control("PUT", f"entra/users/{OID}", json={"assigned": False})
    age_sign_in(3700)
    response, _ = browser.open(reverse("my_access"))
    body = response.content.decode()
    assert response.status_code == 403, body[:300]
    reason = html.unescape(re.search(r'id="sign-in-failure-reason">([^<]*)<', body).group(1))
    assert reason.startswith("Your organisation's Entra ID refused to sign you in: AADSTS50105: "), reason
    assert "_auth_user_id" not in browser.portal.session
    assert not SignInClaims.objects.exists()
    # the claims are gone: the other session ends too, without waiting for its own re-validation
    assert other.portal.get(reverse("my_access"), **PAGE).status_code == 302
    refused = token.get("/api/v1/vms/")  # and their personal API token
    assert refused.status_code == 401 and refused.json()["detail"].startswith("Entra ID refused your latest sign-in")


def test_polls_and_api_calls_are_not_sent_through_entra_id(browser):
    age_sign_in(3700)
    poll = browser.portal.get(reverse("my_access"), HTTP_HX_REQUEST="true", HTTP_ACCEPT="text/html")
    assert poll.status_code == 200
    fetch = browser.portal.get(reverse("my_access"), HTTP_ACCEPT="text/html", HTTP_SEC_FETCH_DEST="empty")
    assert fetch.status_code == 200
    api = browser.portal.get("/api/v1/requests/", HTTP_ACCEPT="application/json")
    assert api.status_code == 200


def test_zero_turns_it_off(browser, entra_settings):
    entra_settings.ENTRA_REVALIDATE_SECONDS = 0
    age_sign_in(3700)
    assert browser.open(reverse("my_access"))[1] is None


def test_a_break_glass_session_is_never_sent_to_entra_id(client, breakglass_admin, settings):
    settings.ENTRA_REVALIDATE_SECONDS = 1
    client.force_login(breakglass_admin, backend="accounts.backends.BreakGlassPasswordBackend")
    assert client.get(reverse("my_access"), **PAGE).status_code == 200


def test_the_revalidation_page_leads_only_to_this_site(browser):
    age_sign_in(3700)
    response = browser.portal.get(reverse("revalidate") + "?next=https://evil.example/", **PAGE)
    assert response.status_code == 302 and response["Location"].startswith("https://127.0.0.1:")
    answer = browser.entra.get(response["Location"], verify=browser.ca, allow_redirects=False, timeout=10)
    landed = browser.portal.get(Browser._local(answer.headers["Location"]), **PAGE)
    assert landed.status_code == 302 and landed["Location"] == reverse("dashboard")


def test_unreachable_entra_id_postpones_the_revalidation(browser, entra_settings):
    from accounts.config import entra_socialaccount_providers

    entra_settings.SOCIALACCOUNT_PROVIDERS = entra_socialaccount_providers(
        authority="https://127.0.0.1:9", tenant_id=entra_settings.ENTRA_TENANT_ID,
        client_id=entra_settings.ENTRA_CLIENT_ID, secret=entra_settings.ENTRA_CLIENT_SECRET)
    age_sign_in(3700)
    response, authorize = browser.open(reverse("my_access"))
    assert response.status_code == 200 and authorize is None
    assert browser.portal.get(reverse("my_access"), **PAGE).status_code == 200  # not asked again at once


def test_my_access_says_when_the_claims_are_read_again(browser, entra_settings):
    from accounts.models import SignInClaims

    age_sign_in(600)
    page = browser.portal.get(reverse("my_access"), **PAGE).content.decode()
    due_at = SignInClaims.objects.get().signed_in_at + timedelta(seconds=3600)
    shown = re.search(r'id="next-check">([^<]*)<time datetime="([^"]+)"', page)
    assert shown is not None, page[page.find("my-claims"):][:1500]
    assert " ".join(shown.group(1).split()) == "at your first page after"
    assert shown.group(2).startswith(due_at.strftime("%Y-%m-%dT%H:%M")), shown.group(2)
    assert "Changes in Entra ID apply when the claims are read again; changes" in " ".join(page.split())
    entra_settings.ENTRA_REVALIDATE_SECONDS = 0
    page = browser.portal.get(reverse("my_access"), **PAGE).content.decode()
    assert 'id="next-check"' not in page
    assert "apply when the claims are read again, at your next sign-in;" in " ".join(page.split())
