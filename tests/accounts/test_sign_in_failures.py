"""A sign-in response the portal cannot use lands on a clear page, never a 500."""
import html

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

CALLBACK = reverse("openid_connect_callback", kwargs={"provider_id": "entra"})


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"state": "never-issued", "code": "abc"},
        {"state": "never-issued", "error": "access_denied"},
    ],
)
def test_a_response_without_a_sign_in_of_this_browser_is_refused(client, query):
    response = client.get(CALLBACK, query)
    assert response.status_code == 401
    assert "Sign-in failed" in response.content.decode()
    assert "does not belong to a sign-in started in this browser" in response.content.decode()
    assert 'href="/accounts/login/"' in response.content.decode()


def test_an_unknown_provider_is_not_found(client):
    assert client.get(reverse("openid_connect_callback", kwargs={"provider_id": "github"})).status_code == 404
    assert client.post(reverse("openid_connect_login", kwargs={"provider_id": "github"})).status_code == 404


def test_an_unreachable_entra_id_is_explained(client, settings):
    response = client.post(reverse("openid_connect_login", kwargs={"provider_id": "entra"}))
    assert response.status_code == 502
    assert "could not reach Entra ID" in response.content.decode()


def test_sign_in_starts_only_from_a_post(client):
    response = client.get(reverse("openid_connect_login", kwargs={"provider_id": "entra"}))
    assert response.status_code == 200
    assert "Continue" in response.content.decode()


def test_a_head_neither_starts_nor_spends_a_sign_in(client, entra_settings, fresh_emulator):
    """allauth takes any method but GET as the POST that starts a sign-in, and the callback spends the sign-in's
    one-time state: a HEAD of either is a 405 (whose ``Allow`` leaves HEAD out) that changes nothing."""
    from urllib.parse import parse_qs, urlsplit

    from allauth.socialaccount.internal.statekit import STATES_SESSION_KEY

    start_url = reverse("openid_connect_login", kwargs={"provider_id": "entra"})
    head = client.head(start_url)
    assert head.status_code == 405 and head["Allow"] == "GET, POST"
    assert STATES_SESSION_KEY not in client.session
    start = client.post(start_url)
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    head = client.head(CALLBACK, {"state": state, "error": "access_denied"})
    assert head.status_code == 405 and head["Allow"] == "GET"
    assert state in client.session[STATES_SESSION_KEY]  # still there for the browser's GET


def test_without_entra_settings_the_page_says_so(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    assert "not configured" in client.get(reverse("login")).content.decode()
    assert client.post(reverse("openid_connect_login", kwargs={"provider_id": "entra"})).status_code == 404


def test_a_missing_ca_bundle_is_explained(client, settings, tmp_path):
    settings.ENTRA_CA_BUNDLE = str(tmp_path / "missing-ca.pem")
    response = client.post(reverse("openid_connect_login", kwargs={"provider_id": "entra"}))
    assert response.status_code == 502
    assert "could not reach Entra ID" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_tenant_taken_off_the_allowed_list_ends_its_users_sessions(entra_settings, fresh_emulator):
    from django.test import Client

    from accounts.demo import demo_role_mappings_ensure
    from tests.plugins.personas import PERSONAS, sign_in_with_client

    demo_role_mappings_ensure()
    client = Client(SERVER_NAME="127.0.0.1")
    assert sign_in_with_client(client, fresh_emulator, PERSONAS["requester"].oid).status_code == 302
    assert client.get(reverse("my_access")).status_code == 200
    entra_settings.ENTRA_ALLOWED_TENANTS = ["5b1f2d3c-7e8a-4b9c-8d0e-1f2a3b4c5d6e"]
    response = client.get(reverse("my_access"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db(transaction=True)
def test_an_entra_session_ends_at_its_sign_ins_maximum_age_however_busy(entra_settings, fresh_emulator):
    from datetime import timedelta

    from django.test import Client
    from django.utils import timezone

    from accounts.demo import demo_role_mappings_ensure
    from accounts.models import SignInClaims
    from tests.plugins.personas import PERSONAS, sign_in_with_client

    demo_role_mappings_ensure()
    client = Client(SERVER_NAME="127.0.0.1")
    assert sign_in_with_client(client, fresh_emulator, PERSONAS["requester"].oid).status_code == 302
    claims = SignInClaims.objects.get()
    almost = timezone.now() - timedelta(seconds=entra_settings.ENTRA_SIGN_IN_MAX_AGE - 60)
    SignInClaims.objects.filter(pk=claims.pk).update(signed_in_at=almost)
    assert client.get(reverse("my_access")).status_code == 200  # still within the age
    SignInClaims.objects.filter(pk=claims.pk).update(signed_in_at=almost - timedelta(minutes=2))
    response = client.get(reverse("my_access"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.django_db(transaction=True)
def test_a_disabled_user_is_refused_and_nothing_of_the_refused_sign_in_is_recorded(entra_settings, fresh_emulator):
    from django.test import Client

    from accounts.models import SignInClaims, User
    from audit.models import AuditEvent
    from tests.plugins.personas import PERSONAS, sign_in_with_client

    oid = PERSONAS["requester"].oid
    assert sign_in_with_client(Client(SERVER_NAME="127.0.0.1"), fresh_emulator, oid).status_code == 302
    User.objects.filter(entra_object_id=oid).update(is_active=False)
    signed_in_at = SignInClaims.objects.get().signed_in_at

    response = sign_in_with_client(Client(SERVER_NAME="127.0.0.1"), fresh_emulator, oid)
    assert response.status_code == 403
    assert "Your portal account is disabled" in response.content.decode()
    assert SignInClaims.objects.get().signed_in_at == signed_in_at  # the refused sign-in freshened nothing
    assert AuditEvent.objects.filter(action="user.sign_in").count() == 1  # only the sign-in that happened


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_second_sign_in_says_the_first_still_stands(entra_settings, fresh_emulator):
    from urllib.parse import parse_qsl, urlsplit

    import requests
    from django.test import Client

    from tests.plugins.personas import PERSONAS, sign_in_with_client

    client = Client(SERVER_NAME="127.0.0.1")
    assert sign_in_with_client(client, fresh_emulator, PERSONAS["requester"].oid).status_code == 302
    start = client.post(reverse("openid_connect_login", kwargs={"provider_id": "entra"}))
    authorize = urlsplit(start["Location"])
    cancelled = requests.post(f"{authorize.scheme}://{authorize.netloc}{authorize.path}",
                              data=dict(parse_qsl(authorize.query)) | {"cancel": "1"},
                              verify=str(fresh_emulator.ca_pem), allow_redirects=False, timeout=10)
    callback = urlsplit(cancelled.headers["Location"])
    body = client.get(f"{callback.path}?{callback.query}").content.decode()
    assert 'id="sign-in-cancelled"' in body
    assert "you are not signed in" not in body
    assert "you are still signed in as Alice Requester" in body
    assert client.get(reverse("my_access")).status_code == 200


DISCOVERY_PROBLEMS = [
    ("no_jwks_uri", "its jwks_uri None is not an https URL"),
    ("jwks_uri_not_a_string", "is not an https URL"),
    ("jwks_uri_over_http", "its jwks_uri 'http://"),
    ("not_an_object", "/v2.0/.well-known/openid-configuration is unusable: a JSON list, not an object"),
    ("not_json", "/v2.0/.well-known/openid-configuration is unusable: not JSON (text/html"),
    ("no_authorization_endpoint", "its authorization_endpoint None is not an https URL"),
    ("no_token_endpoint", "its token_endpoint None is not an https URL"),
    ("token_endpoint_over_http", "its token_endpoint 'http://"),
    ("no_issuer", "its issuer None is not a string"),
]
KEY_SET_PROBLEMS = [
    ("keys_not_a_list", "/discovery/v2.0/keys is unusable: its keys are a JSON dict, not a list"),
    ("key_not_an_object", "/discovery/v2.0/keys is unusable: one of its keys is a JSON str, not an object"),
    ("wrong_kty", "cannot be read as RS256: Not an RSA key"),
    ("no_modulus", "cannot be read as RS256: Not a public or private key"),
    ("modulus_not_base64url", "cannot be read as RS256: Unable to construct key from JWK: Invalid base64"),
]


def assert_refused_for_unusable_metadata(client, response, caplog, reason: str) -> None:
    """The sign-in-failed page saying the metadata is unusable, the reason in the log, nobody signed in."""
    from accounts.models import SignInClaims

    body = response.content.decode()
    assert response.status_code == 401, body[:500]
    assert 'id="sign-in-failure-reason"' in body and "sign-in metadata is unusable" in body
    assert "You are not signed in" in body and 'id="try-again"' in body
    assert reason in caplog.text
    assert "_auth_user_id" not in client.session and not SignInClaims.objects.exists()
    assert client.get(reverse("my_access")).status_code == 302


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("document", "mode", "reason"),
                         [("discovery", *p) for p in DISCOVERY_PROBLEMS] + [("jwks", *p) for p in KEY_SET_PROBLEMS])
def test_unusable_entra_metadata_at_the_callback_ends_on_the_sign_in_failed_page(
        entra_settings, fresh_emulator, spoil, caplog, document, mode, reason):
    from django.test import Client

    from tests.plugins.personas import PERSONAS, authorize_with_client, sign_in_with_client

    client = Client(SERVER_NAME="127.0.0.1")
    callback = authorize_with_client(client, fresh_emulator, PERSONAS["requester"].oid)
    spoil(document, mode)
    assert_refused_for_unusable_metadata(client, client.get(callback), caplog, reason)

    spoil(document, None)  # nothing of the broken metadata was kept: the next sign-in works
    assert sign_in_with_client(client, fresh_emulator, PERSONAS["requester"].oid).status_code == 302
    assert client.get(reverse("my_access")).status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("mode", "reason"), DISCOVERY_PROBLEMS)
def test_an_unusable_discovery_document_stops_the_sign_in_before_entra_id(
        entra_settings, fresh_emulator, spoil, caplog, mode, reason):
    from django.test import Client

    from tests.plugins.personas import PERSONAS, sign_in_with_client

    client = Client(SERVER_NAME="127.0.0.1")
    spoil("discovery", mode)
    start = client.post(reverse("openid_connect_login", kwargs={"provider_id": "entra"}))
    assert_refused_for_unusable_metadata(client, start, caplog, reason)

    spoil("discovery", None)
    assert sign_in_with_client(client, fresh_emulator, PERSONAS["requester"].oid).status_code == 302


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("answer", "reason"), [
    ({"error": ""}, "Entra ID did not sign you in, and did not say why."),
    ({"error": "\x00\x1b", "error_description": "\x07 "}, "Entra ID did not sign you in, and did not say why."),
    ({"error": "server_error", "error_description": "AADSTS50000:\x00 an\r\nerror"},
     "Entra ID did not sign you in: server_error — AADSTS50000: an error."),
    ({"error": " ", "error_description": "AADSTS50000: an error"},
     "Entra ID did not sign you in: AADSTS50000: an error."),
    ({}, "Entra ID's answer carried neither a sign-in code nor an error, so nothing was signed in. Try again."),
], ids=["empty error", "control characters only", "control characters", "a description only",
        "neither code nor error"])
def test_an_answer_without_a_code_says_what_entra_id_said(entra_settings, fresh_emulator, answer, reason):
    from urllib.parse import parse_qs, urlsplit

    from django.test import Client
    from django.utils.html import escape

    from tests.plugins.personas import PERSONAS, authorize_with_client

    client = Client(SERVER_NAME="127.0.0.1")
    state = parse_qs(urlsplit(authorize_with_client(client, fresh_emulator, PERSONAS["requester"].oid)).query)["state"]
    response = client.get(CALLBACK, {"state": state[0], **answer})
    assert response.status_code == 401
    assert f'<p class="errornote" id="sign-in-failure-reason">{escape(reason)}</p>' in response.content.decode()


def _started(client, next_url: str = "") -> str:
    """Start a real sign-in from the sign-in page's Entra ID form (``next`` as it sends it): the state Entra ID will
    send back."""
    from urllib.parse import parse_qs, urlsplit

    start = client.post(reverse("openid_connect_login", kwargs={"provider_id": "entra"}),
                        {"next": next_url} if next_url else {})
    assert start.status_code == 302, start.content[:300]
    return parse_qs(urlsplit(start["Location"]).query)["state"][0]


REFUSED = ("AADSTS50105: Your administrator has configured the application jitportal to block users unless they "
           "are specifically granted access. The signed in user 'mallory@contoso.example' is blocked.")


def test_access_denied_by_the_organisation_says_so_and_names_the_code(client, entra_settings, fresh_emulator):
    """Entra ID's ``access_denied`` is not always the user's Cancel: refused by the organisation (not assigned to
    the app), the page says so with Entra ID's words, and Try again leads where the sign-in was to."""
    state = _started(client, "/requests/?state=open")
    response = client.get(CALLBACK, {"state": state, "error": "access_denied", "error_description": REFUSED})
    body = response.content.decode()
    assert response.status_code == 403
    assert "Sign-in failed" in body and "cancelled" not in body.lower()
    assert "Your organisation&#x27;s Entra ID refused to sign you in: AADSTS50105:" in body
    assert "Give this message to your Entra ID administrator." in body
    assert 'href="/accounts/login/?next=%2Frequests%2F%3Fstate%3Dopen"' in body


@pytest.mark.parametrize("answer", [
    {"error_description": "AADSTS65004: User declined to consent to access the app."},
    {"error_subcode": "cancel", "error_description": "AADSTS50000: The user cancelled the sign-in."},
    {},
    {"error_description": "\x00\r\n\x1b \t"},  # nothing printable: nothing said
], ids=["declined consent", "cancel subcode", "no description", "no printable description"])
def test_access_denied_by_the_user_reads_as_cancelled_and_try_again_keeps_the_destination(
        client, entra_settings, fresh_emulator, answer):
    state = _started(client, "/audit/")
    response = client.get(CALLBACK, {"state": state, "error": "access_denied", **answer})
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="sign-in-cancelled"' in body
    assert 'href="/accounts/login/?next=%2Faudit%2F"' in body


@pytest.mark.parametrize(("query", "cancelled"), [
    ({"error_description": "AADSTS65004: User declined to consent to access the app."}, True),
    ({"error_description": "Declined (AADSTS65004)."}, True),
    ({"error_description": "AADSTS650049: a code that merely starts with the declined consent's."}, False),
    ({"error_description": "AADSTS165004: a code that merely ends with it."}, False),
    ({"error_description": "AADSTS50105: not assigned to the application."}, False),
    ({"error_description": ""}, True),
    ({"error_description": "\x00\x07\r\n \u200b\t"}, True),  # control and format characters, spaces only
    ({"error_description": "\x00AADSTS50105:\r\nblocked"}, False),
    ({"error_subcode": "Cancel", "error_description": "AADSTS50105: blocked"}, True),
    ({}, True),
], ids=["AADSTS65004", "AADSTS65004 in words", "AADSTS650049", "AADSTS165004", "AADSTS50105", "empty",
        "nothing printable", "AADSTS50105 among control characters", "cancel subcode", "no description"])
def test_user_cancelled_reads_the_whole_code_and_the_printable_text(rf, query, cancelled):
    from accounts.adapters import user_cancelled

    request = rf.get("/accounts/oidc/entra/login/callback/", {"error": "access_denied", **query})
    assert user_cancelled(request) is cancelled


def _token_refusal(body: bytes):
    """The exception allauth raises when Entra ID's token endpoint refuses the sign-in code with ``body``."""
    from allauth.socialaccount.providers.oauth2.client import OAuth2Error

    return OAuth2Error(f"Error retrieving access token: {body}")


@pytest.mark.parametrize(("body", "status", "reason"), [
    (b'{"error":"invalid_grant","error_description":"AADSTS50105: Not assigned.\\r\\nTrace ID: 1","error_codes":'
     b'[50105]}', 403, "Your organisation's Entra ID refused to sign you in: AADSTS50105: Not assigned. Trace ID: 1. "
                       "Give this message to your Entra ID administrator."),
    (b'{"error":"invalid_grant","error_description":"AADSTS53003: Access has been blocked by Conditional Access '
     b'policies.","error_codes":[53003]}', 403, "Your organisation's Entra ID refused to sign you in: AADSTS53003:"),
    (b'{"error":"invalid_grant","error_description":"AADSTS54005: OAuth2 Authorization code was already redeemed.",'
     b'"error_codes":[54005]}', 401, "(the one-time sign-in code was rejected, for example because it was already "
                                     "used). Entra ID said: AADSTS54005: OAuth2 Authorization code was already"),
    (b'{"error":"invalid_grant","error_description":"AADSTS50105: says the text","error_codes":["50105"]}', 401,
     "Entra ID said: AADSTS50105: says the text"),  # only the codes as Entra ID lists them (numbers) count
    (b'{"error":"invalid_grant","error_codes":[70000,50105]}', 403,
     "Your organisation's Entra ID refused to sign you in: AADSTS50105. Give this message"),  # the code, no words
    (b"<html>Service unavailable</html>", 401, "because it was already used)."),
    (b'["invalid_grant"]', 401, "because it was already used)."),
], ids=["AADSTS50105", "AADSTS53003", "AADSTS54005", "code as text", "no description", "not JSON", "not an object"])
def test_a_refused_sign_in_code_says_what_entra_id_said(rf, body, status, reason):
    """Entra ID's token endpoint refusing the sign-in code: for the organisation's reasons (not assigned to the app,
    Conditional Access) a 403 in its words, as its ``access_denied``; for others what it said after the portal's
    reading; an answer that is no JSON error object reads as before."""
    from allauth.core.exceptions import ImmediateHttpResponse
    from django.contrib.auth.models import AnonymousUser

    from accounts.adapters import EntraSocialAccountAdapter

    request = rf.get(CALLBACK, {"state": "s", "code": "c"})
    request.user = AnonymousUser()
    with pytest.raises(ImmediateHttpResponse) as raised:
        EntraSocialAccountAdapter(request).on_authentication_error(
            request, None, error="unknown", exception=_token_refusal(body), extra_context={"state": {}})
    page = raised.value.response
    assert page.status_code == status
    assert reason in html.unescape(page.content.decode())


def test_try_again_never_leads_off_the_site(rf):
    from accounts.oidc import retry_url

    request = rf.get("/accounts/oidc/entra/login/callback/")
    assert retry_url(request, "https://evil.example/") == "/accounts/login/"
    assert retry_url(request, "//evil.example/x") == "/accounts/login/"
    assert retry_url(request, None) == "/accounts/login/"
    assert retry_url(request, "/inventory/") == "/accounts/login/?next=%2Finventory%2F"


# Entra ID's description as it sends it: the message, then the ids its administrator looks the sign-in up by.
REFUSED_WITH_IDS = (
    "AADSTS50105: Your administrator has configured the application JIT Portal ('00000000-1111-2222-3333-"
    "444444444444') to block users unless they are specifically granted ('assigned') access to the application. The "
    "signed in user 'mallory@contoso.example' is blocked because they are not a direct member of a group with "
    "access, nor had access directly assigned by an administrator. Please contact your administrator to assign "
    "access to this application.\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nCorrelation ID: "
    "aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2026-01-09 02:02:12Z"
)


def test_a_refusal_keeps_the_ids_the_administrator_needs(client, entra_settings, fresh_emulator):
    state = _started(client)
    response = client.get(CALLBACK, {"state": state, "error": "access_denied", "error_description": REFUSED_WITH_IDS})
    body = response.content.decode()
    assert response.status_code == 403
    assert "Correlation ID: aaaa0000-bb11-2222-33cc-444444dddddd Timestamp: 2026-01-09 02:02:12Z." in body


def _through_entra(client, emulator, sign_in_page: str, answer: dict) -> str:
    """From the portal's sign-in page ``sign_in_page``, press Sign in with Entra ID (with the page's ``next``) and
    answer Entra ID's page with ``answer``: the callback URL Entra ID sends the browser back to."""
    import html
    import re
    from urllib.parse import parse_qsl, urlsplit

    import requests

    page = client.get(sign_in_page).content.decode()
    entra_form = page.split('id="entra-sign-in"', 1)[1].split("</form>", 1)[0]
    field = re.search(r'name="next" value="([^"]*)"', entra_form)
    start = client.post(reverse("openid_connect_login", kwargs={"provider_id": "entra"}),
                        {"next": html.unescape(field.group(1))} if field else {})
    assert start.status_code == 302, start.content[:300]
    authorize = urlsplit(start["Location"])
    answered = requests.post(f"{authorize.scheme}://{authorize.netloc}{authorize.path}",
                             data=dict(parse_qsl(authorize.query)) | answer,
                             verify=str(emulator.ca_pem), allow_redirects=False, timeout=10)
    assert answered.status_code == 302, answered.text[:300]
    callback = urlsplit(answered.headers["Location"])
    return f"{callback.path}?{callback.query}"


def test_try_again_after_a_cancel_leads_to_the_deep_link_once_signed_in(entra_settings, fresh_emulator,
                                                                         persona_mappings):
    """A deep link sends an anonymous user to sign in; they cancel on Entra ID's page, press Try again, sign in, and
    land on the page they first opened."""
    import html
    import re

    from django.test import Client

    from tests.plugins.personas import PERSONAS

    client = Client(SERVER_NAME="127.0.0.1")  # a loopback host, which the emulator takes as redirect URI
    deep_link = f"{reverse('my_access')}?from=mail"
    to_sign_in = client.get(deep_link)
    assert to_sign_in.status_code == 302
    cancelled = client.get(_through_entra(client, fresh_emulator, to_sign_in["Location"], {"cancel": "1"}))
    assert cancelled.status_code == 200 and 'id="sign-in-cancelled"' in cancelled.content.decode()
    try_again = html.unescape(re.search(r'id="try-again" href="([^"]*)"', cancelled.content.decode()).group(1))
    signed_in = client.get(_through_entra(client, fresh_emulator, try_again,
                                          {"user_oid": PERSONAS["requester"].oid}))
    assert signed_in.status_code == 302 and signed_in["Location"] == deep_link
    assert client.get(deep_link).status_code == 200


def test_a_user_not_assigned_to_the_app_is_refused_in_entra_ids_words(entra_settings, fresh_emulator,
                                                                       persona_mappings):
    """The organisation's Entra ID requires assignment to the app and the user has none: they sign in on Entra ID's
    page, come back with ``access_denied`` and AADSTS50105, and read it (with the ids their administrator looks the
    sign-in up by) on a 403 page whose Try again, once they are assigned, leads to where they were going."""
    import html
    import re

    from django.test import Client

    from accounts.models import SignInClaims
    from tests.plugins.personas import PERSONAS

    oid = PERSONAS["requester"].oid
    fresh_emulator.control("PUT", f"entra/users/{oid}", json={"assigned": False})
    client = Client(SERVER_NAME="127.0.0.1")  # a loopback host, which the emulator takes as redirect URI
    deep_link = f"{reverse('my_access')}?from=mail"
    refused = client.get(_through_entra(client, fresh_emulator, client.get(deep_link)["Location"], {"user_oid": oid}))
    body = refused.content.decode()
    assert refused.status_code == 403, body[:500]
    assert 'id="sign-in-cancelled"' not in body
    reason = html.unescape(re.search(r'id="sign-in-failure-reason">([^<]*)<', body).group(1))
    uuid = r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}"
    assert re.fullmatch(
        r"Your organisation's Entra ID refused to sign you in: AADSTS50105: Your administrator has configured the "
        r"application JIT Portal \('[0-9a-f-]+'\) to block users unless they are specifically granted \('assigned'\) "
        r"access to the application\. The signed in user 'alice@contoso\.example' is blocked because .* "
        rf"Trace ID: {uuid} Correlation ID: {uuid} Timestamp: \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\dZ\. Give this message "
        r"to your Entra ID administrator\.", reason), reason
    assert "_auth_user_id" not in client.session and not SignInClaims.objects.exists()

    fresh_emulator.control("PUT", f"entra/users/{oid}", json={"assigned": True})
    try_again = html.unescape(re.search(r'id="try-again" href="([^"]*)"', body).group(1))
    signed_in = client.get(_through_entra(client, fresh_emulator, try_again, {"user_oid": oid}))
    assert signed_in.status_code == 302 and signed_in["Location"] == deep_link
