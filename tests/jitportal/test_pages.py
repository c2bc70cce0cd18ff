"""Every portal page asks for sign-in and renders in the admin look once signed in."""
import re

import pytest
from django.urls import reverse

PAGES = ["dashboard", "settings", "policies:inventory", "policies:requests", "audit:search"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
@pytest.mark.parametrize("name", PAGES)
def test_pages_extend_the_admin_base(client, breakglass_admin, name):
    client.force_login(breakglass_admin)
    response = client.get(reverse(name))
    assert response.status_code == 200
    templates = {t.name for t in response.templates}
    assert {"admin/base.html", "admin/base_site.html", "generic/base.html"} <= templates
    assert b'id="portal-nav"' in response.content


@pytest.mark.django_db
def test_sign_out_needs_a_post(client, breakglass_admin):
    client.force_login(breakglass_admin)
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("dashboard")).status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["policies:inventory", "policies:requests", "audit:search",
                                  "accounts:rolemapping_list"])
def test_every_lists_filter_button_says_filter(client, breakglass_admin, name):
    """One word for the button that filters a list (its panel is headed Filter), on every list."""
    import re

    client.force_login(breakglass_admin)
    page = client.get(reverse(name)).content.decode()
    buttons = set(re.findall(r'<input type="submit" value="([^"]+)"', page))
    assert "Filter" in buttons and not buttons - {"Filter", "Search"}, buttons


@pytest.mark.django_db
def test_the_dashboards_empty_recent_requests_tell_whoever_may_request_where_to_start(client, reader, approver,
                                                                                    outsider):
    """A reader (who may request access, as Azure's JIT reader may initiate) saw only "No requests yet." with no
    hint that he may ask for access, nor where; those who may not request are not told to."""
    for user, told in ((reader, True), (approver, False), (outsider, False)):
        client.force_login(user)
        page = client.get(reverse("dashboard")).content.decode()
        empty = re.search(r'<p class="empty-state" id="no-requests">(.*?)</p>', page, re.S).group(1)
        assert ("find the VM" in empty and f'{reverse("policies:inventory")}?tab=configured' in empty) is told, user
