"""Every link a page offers is one its user may open: the navigation, the inventory's row menu, the Requests page's
"Request access", and a plain hint for someone with no role at all."""
from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.plugins.personas import IN_SCOPE
from tests.policies.factories import make_vm

pytestmark = pytest.mark.django_db

NAV = re.compile(r'<nav id="portal-nav".*?</nav>', re.S)


def nav_labels(client) -> list[str]:
    page = client.get(reverse("dashboard")).content.decode()
    return re.findall(r">([^<]+)</a></li>", NAV.search(page).group(0))


@pytest.mark.parametrize(("persona", "labels"), [
    ("requester", ["Dashboard", "Inventory", "Requests"]),
    ("auditor", ["Dashboard", "Inventory", "Requests", "Audit"]),
    ("approver", ["Dashboard", "Inventory", "Requests", "Approvals"]),
    ("policy_admin", ["Dashboard", "Inventory", "Requests", "Audit", "Settings"]),
    ("outsider", ["Dashboard", "Requests"]),
])
def test_the_navigation_shows_only_what_the_user_may_open(client, persona_mappings, persona, labels):
    from tests.plugins.personas import make_persona

    user = make_persona(persona)
    client.force_login(user)
    assert nav_labels(client) == labels
    for url_name in ("dashboard", "policies:requests", "my_access", "notifications:preferences", "api_tokens"):
        assert client.get(reverse(url_name)).status_code == 200, url_name  # the user links work for everyone


def test_the_row_menu_offers_only_what_the_user_may_do(client, requester, auditor):
    vm = make_vm(f"{IN_SCOPE}/resourceGroups/rg-menu")
    edit, connect = reverse("policies:policy_edit", args=[vm.pk]), reverse("policies:connect", args=[vm.pk])
    client.force_login(requester)
    page = client.get(reverse("policies:inventory")).content.decode()
    assert connect in page and edit not in page and "Activity log" not in page
    client.force_login(auditor)
    page = client.get(reverse("policies:inventory")).content.decode()
    assert "Activity log" in page and connect not in page and edit not in page
    detail = client.get(reverse("policies:vm_detail", args=[vm.pk])).content.decode()
    assert "Activity log of this VM" in detail
    client.force_login(requester)
    assert "Activity log" not in client.get(reverse("policies:vm_detail", args=[vm.pk])).content.decode()
    client.force_login(auditor)
    requests = client.get(reverse("policies:requests")).content.decode()
    assert 'id="new-request"' not in requests and "No requests in your scope yet." in requests  # everyone's


@pytest.mark.parametrize("page", ["dashboard", "policies:requests"])
def test_someone_without_a_role_is_told_why_the_portal_is_empty(client, outsider, requester, page):
    client.force_login(outsider)
    assert 'id="no-role"' in client.get(reverse(page)).content.decode()
    client.force_login(requester)
    assert 'id="no-role"' not in client.get(reverse(page)).content.decode()


def test_dates_read_the_same_on_every_page(client, requester):
    from api import services as api_services

    api_services.token_create(actor=requester, name="cli")
    client.force_login(requester)
    page = client.get(reverse("api_tokens")).content.decode()
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", page)
    assert "a.m." not in page and "p.m." not in page


def test_pages_name_the_portals_icon(client, requester):
    from django.contrib.staticfiles import finders

    client.force_login(requester)
    page = client.get(reverse("dashboard")).content.decode()
    href = re.search(r'<link rel="icon" href="([^"]+)"', page).group(1)
    assert href.endswith("jitportal/favicon.svg") and finders.find("jitportal/favicon.svg")
