"""The API tokens page in headless chromium: the expiry field comes filled with the default lifetime, which the
browser sends as it shows it; emptied, the page says every token must expire. Revoking asks first, by keyboard too."""
from datetime import UTC, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from api import services
from api.models import ApiToken
from tests.plugins.personas import sign_in_as_breakglass


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_token_made_in_the_browser_gets_the_default_expiry_and_never_is_refused(page, live_server,
                                                                                  breakglass_admin, settings):
    settings.API_TOKEN_DEFAULT_DAYS, settings.API_TOKEN_MAX_DAYS = 30, 60
    sign_in_as_breakglass(page, live_server.url)
    page.goto(f"{live_server.url}{reverse('api_tokens')}")
    page.fill("#id_name", "forever")
    page.fill("#id_expires_at", "")
    page.click("#token-create input[type=submit]")
    expect(page.locator("#token-create")).to_contain_text("A token must expire: give a date at most 60 days from now")
    assert not ApiToken.objects.exists()

    page.goto(f"{live_server.url}{reverse('api_tokens')}")
    page.fill("#id_name", "deploy")
    page.click("#token-create input[type=submit]")
    expect(page.locator("#token-secret")).to_contain_text("jit_")
    token = ApiToken.objects.get()
    assert abs(token.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=2)
    expect(page.locator(f'tr[data-prefix="{token.prefix}"] .token-expires')).to_have_text(
        f"{token.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_new_token_is_copied_from_the_keyboard_and_the_list_fits_a_phone(browser, live_server, breakglass_admin):
    """The new token's box gave no way to copy it but selecting it by hand and left the focus at the top of the
    page; its Copy button now takes the focus. On a phone the token list (seven columns, about 630 px) scrolls
    within its box, and each Revoke button names its token."""
    context = browser.new_context(viewport={"width": 390, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    sign_in_as_breakglass(page, live_server.url)
    page.goto(f"{live_server.url}{reverse('api_tokens')}")
    page.fill("#id_name", "deploy script")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    copy = page.locator("#copy-token")
    expect(copy).to_be_focused()
    page.keyboard.press("Enter")
    expect(copy).to_have_text("Copied")
    status = page.locator("#copy-status")  # said to screen readers too, not only on the button
    expect(status).to_have_text("Copy token: copied")
    expect(status).to_have_attribute("aria-live", "polite")
    expect(status).to_have_attribute("role", "status")
    secret = page.locator("#token-secret").inner_text()
    assert secret.startswith("jit_") and page.evaluate("() => navigator.clipboard.readText()") == secret
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    expect(page.get_by_role("link", name="Revoke deploy script")).to_have_count(1)
    context.close()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_token_is_revoked_from_the_keyboard_after_a_confirm_page_without_javascript(browser, live_server,
                                                                                       breakglass_admin):
    """Revoke on the list opens a page asking first; No, keep it goes back with the token still active, Yes,
    revoke revokes it. All of it by keyboard, in a browser with JavaScript switched off."""
    context = browser.new_context(java_script_enabled=False)
    context.set_default_timeout(15_000)
    page = context.new_page()
    sign_in_as_breakglass(page, live_server.url)
    token = services.token_create(actor=breakglass_admin, name="deploy script").token
    tokens_url = f"{live_server.url}{reverse('api_tokens')}"
    page.goto(tokens_url)
    page.get_by_role("link", name="Revoke deploy script").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.locator("#confirm-question")).to_have_text(f"Revoke the token “deploy script” (jit_{token.prefix}…)?")
    page.locator("#cancel").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == tokens_url
    token.refresh_from_db()
    assert token.revoked_at is None

    page.get_by_role("link", name="Revoke deploy script").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.locator("#confirm").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == tokens_url
    expect(page.locator("ul.messagelist")).to_contain_text("Token 'deploy script' revoked: it no longer works.")
    expect(page.get_by_role("link", name="Revoke deploy script")).to_have_count(0)
    token.refresh_from_db()
    assert token.revoked_at is not None
    context.close()
