"""The API tokens page in headless chromium: the expiry field comes filled with the default lifetime, which the
browser sends as it shows it; emptied, the page says every token must expire."""
from datetime import UTC, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

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
