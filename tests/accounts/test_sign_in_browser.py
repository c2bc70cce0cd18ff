"""Sign-in through the emulator's Entra ID pages in headless chromium: the real OIDC flow, end to end."""
import re

import pytest
from playwright.sync_api import expect

from accounts.demo import demo_role_mappings_ensure
from accounts.models import RoleMapping
from tests.plugins.personas import pick_entra_user, sign_in_with_entra, start_entra_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEMO_USERS = [
    ("alice@contoso.example", "Alice Requester", "JIT requester"),
    ("bob@contoso.example", "Bob Security Admin", "JIT policy admin"),
    ("carol@contoso.example", "Carol Auditor", "Auditor"),
    ("dave@contoso.example", "Dave Approver", "Approver"),
    ("erin@contoso.example", "Erin Approver", "Approver"),
    ("frank@contoso.example", "Frank Reader", "JIT reader"),
    ("oscar@contoso.example", "Oscar Outsider", None),
]
ALICE_OID = "8a0e7c31-0000-4000-8000-000000000001"
CALLBACK = "/accounts/oidc/entra/login/callback/"


@pytest.fixture
def page(entra_page):
    """Sign-in tests visit the emulator's pages (see ``entra_page``)."""
    return entra_page


@pytest.fixture
def portal(live_server, entra_settings, fresh_emulator):
    """The portal on a live server, signing in against a freshly reset demo emulator, with the demo mappings."""
    demo_role_mappings_ensure()
    return live_server.url


def next_id_token(emulator, mode: str) -> None:
    emulator.control("POST", "entra/next-id-token", json={"mode": mode})


def expect_refused(page, portal: str, reason: str) -> None:
    expect(page.locator("#sign-in-failure-reason")).to_contain_text(re.compile(reason, re.IGNORECASE))
    expect(page.locator("#try-again")).to_have_attribute("href", "/accounts/login/")
    assert page.url.startswith(portal + CALLBACK)


@pytest.mark.parametrize(("username", "name", "role"), DEMO_USERS, ids=[u[0].split("@")[0] for u in DEMO_USERS])
def test_each_demo_user_signs_in_and_lands_on_the_dashboard(page, portal, username, name, role):
    sign_in_with_entra(page, portal, username)
    expect(page).to_have_url(f"{portal}/")
    expect(page.locator("#user-tools")).to_contain_text(name)
    expect(page.locator("#my-open-access")).to_be_visible()

    page.goto(f"{portal}/accounts/me/")
    if role:
        expect(page.locator("#my-roles")).to_contain_text(role)
    else:
        expect(page.locator("#no-access")).to_be_visible()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("tampered", "signature does not verify"),
        ("expired", "expired"),
        ("wrong_tenant", "not allowed to sign in|issued by"),
        ("wrong_audience", "another application"),
        ("wrong_issuer", "issued by"),
        ("no_nonce", "no nonce"),
        ("bad_nonce", "nonce does not match"),
    ],
)
def test_a_bad_id_token_is_refused_with_a_clear_page(page, portal, fresh_emulator, django_user_model, mode, reason):
    next_id_token(fresh_emulator, mode)
    sign_in_with_entra(page, portal, "alice@contoso.example")
    expect_refused(page, portal, reason)
    page.goto(f"{portal}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    assert not django_user_model.objects.filter(username="alice@contoso.example").exists()


def test_a_replayed_sign_in_response_is_refused(page, browser, portal):
    callbacks = []
    page.on("request", lambda request: callbacks.append(request.url) if CALLBACK in request.url else None)
    sign_in_with_entra(page, portal, "alice@contoso.example")
    expect(page).to_have_url(f"{portal}/")
    (captured,) = callbacks

    # The same browser replays the response after signing out; then another browser tries it.
    page.locator("#logout-form button").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))  # signed out before the next navigation starts
    page.goto(captured)
    expect_refused(page, portal, "already used|not belong")
    other = browser.new_context().new_page()
    other.goto(captured)
    expect(other.locator("#sign-in-failure-reason")).to_contain_text("does not belong")
    other.context.close()


def test_cancelling_lands_on_a_clear_page(page, portal):
    start_entra_sign_in(page, portal)
    page.get_by_role("button", name=re.compile("cancel", re.IGNORECASE)).click()
    expect(page.locator("#sign-in-cancelled")).to_be_visible()
    page.locator("#try-again").click()
    expect(page.locator("#sign-in-with-entra")).to_be_visible()


def test_signing_out_ends_the_session(page, portal):
    sign_in_with_entra(page, portal, "bob@contoso.example")
    page.locator("#logout-form button").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.locator(".messagelist")).to_contain_text("signed out")
    page.goto(f"{portal}/settings/role-mappings/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))


def test_an_app_role_removed_in_entra_is_gone_at_the_next_sign_in(page, portal, fresh_emulator):
    sign_in_with_entra(page, portal, "alice@contoso.example")
    page.goto(f"{portal}/inventory/")
    expect(page.locator("#changelist")).to_be_visible()

    fresh_emulator.control("PUT", f"entra/users/{ALICE_OID}", json={"app_roles": [], "groups": []})
    page.locator("#logout-form button").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    sign_in_with_entra(page, portal, "alice@contoso.example")
    page.goto(f"{portal}/accounts/me/")
    expect(page.locator("#no-access")).to_be_visible()
    response = page.goto(f"{portal}/inventory/")
    assert response.status == 403


def test_an_hour_on_the_next_page_goes_through_entra_id_silently_with_the_roles_entra_id_now_gives(
        page, portal, fresh_emulator, entra_settings):
    """Past ``ENTRA_REVALIDATE_SECONDS`` the next page opens after a silent sign-in (no account picker): with the
    roles Entra ID now gives, so a role removed there is gone without signing out."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import SignInClaims

    entra_settings.ENTRA_REVALIDATE_SECONDS = 3600
    sign_in_with_entra(page, portal, "alice@contoso.example")
    assert page.goto(f"{portal}/inventory/").status == 200
    fresh_emulator.control("PUT", f"entra/users/{ALICE_OID}", json={"app_roles": [], "groups": []})
    assert page.goto(f"{portal}/inventory/").status == 200  # within the hour: the sign-in's roles
    SignInClaims.objects.update(signed_in_at=timezone.now() - timedelta(seconds=3700))
    authorize = []
    page.on("request", lambda request: authorize.append(request.url) if "/authorize" in request.url else None)
    response = page.goto(f"{portal}/inventory/")
    assert response.status == 403 and page.url == f"{portal}/inventory/"
    assert len(authorize) == 1 and "prompt=none" in authorize[0]
    assert SignInClaims.objects.get().app_roles == []


def test_a_deleted_mapping_removes_access_at_the_next_request(page, portal):
    sign_in_with_entra(page, portal, "carol@contoso.example")
    assert page.goto(f"{portal}/audit/").status == 200
    RoleMapping.objects.filter(source_value="JIT.Auditor").delete()
    assert page.goto(f"{portal}/audit/").status == 403


def test_the_emulators_sign_in_page_is_where_the_user_is_picked(page, portal):
    refused = []  # what the browser fetched on the way, the emulator page's icon too (reported only to the console)
    page.on("console", lambda message: refused.append(f"{message.text} ({message.location['url']})")
            if message.type == "error" else None)
    start_entra_sign_in(page, portal)
    assert "/oauth2/v2.0/authorize" in page.url
    assert "code_challenge=" in page.url and "nonce=" in page.url and "state=" in page.url
    page.wait_for_load_state("networkidle")
    pick_entra_user(page, "frank@contoso.example")
    expect(page).to_have_url(f"{portal}/")
    page.wait_for_load_state("networkidle")
    assert refused == []
