"""The django-tables2 list pages: ``?per_page=`` may shrink a page but never grow it past the shared maximum."""
import pytest
from django.urls import reverse

from accounts.models import RoleMapping
from jitportal.lib.tables import MAX_PER_PAGE
from tests.plugins.personas import IN_SCOPE
from tests.policies.factories import make_many_vms

ROWS = MAX_PER_PAGE + 10


def many_vms():
    make_many_vms(3 * ROWS)  # ROWS in each tab


def many_requests():
    from tests.policies.access.factories import make_access_request

    for _ in range(ROWS):
        make_access_request(IN_SCOPE)


def many_mappings():
    RoleMapping.objects.bulk_create(RoleMapping(source_kind="group", role="reader", scope=IN_SCOPE,
                                                source_value=f"00000000-0000-4000-8000-{n:012d}")
                                    for n in range(ROWS))


LISTS = {"policies:inventory": many_vms, "policies:requests": many_requests, "accounts:rolemapping_list": many_mappings}


@pytest.mark.django_db
@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize(("asked", "shown"), [("100000", MAX_PER_PAGE), ("20", 20), ("0", 50), ("-1", 50),
                                              ("many", 50), ("9" * 5000, 50), ("", 50)])
def test_a_list_page_shows_at_most_the_maximum_rows(client, breakglass_admin, name, asked, shown):
    LISTS[name]()
    client.force_login(breakglass_admin)
    response = client.get(reverse(name), {"per_page": asked})
    assert response.status_code == 200
    assert len(response.context["table"].page.object_list) == shown


@pytest.mark.django_db
@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize("asked", ["99999999999999999999999", str(2**63), str(2**63 // 100 + 2)])
def test_a_page_number_beyond_any_database_offset_shows_the_last_page(client, breakglass_admin, name, asked):
    LISTS[name]()
    client.force_login(breakglass_admin)
    response = client.get(reverse(name), {"page": asked, "per_page": "100"})
    assert response.status_code == 200
    page = response.context["table"].page
    assert (page.number, len(page.object_list), page.has_next()) == (2, 10, False)
