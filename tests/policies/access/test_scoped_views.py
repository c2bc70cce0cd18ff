"""A request spanning scopes, seen by someone other than its requester: its page, status fragment, review page and
the Requests list name only the VMs in the viewer's scope (as the API answers), and say that others exist."""
from __future__ import annotations

import pytest
from django.urls import reverse

from policies.access import selectors
from policies.access.models import AccessRequest
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE
from tests.policies.access.factories import add_named_vm, add_vm_at, make_access_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def spanning(persona_mappings):
    """Someone else's open request on a VM in the personas' scope and on one in a subscription none may read."""
    request = make_access_request(f"{IN_SCOPE}/resourceGroups/rg-pages")
    add_vm_at(request, f"{OUT_OF_SCOPE}/resourceGroups/rg-pages", name="vm-elsewhere", number=1433,
              address="51.105.20.9")
    return request


@pytest.mark.parametrize(("persona", "page"), [("requester", "policies:request_detail"),
                                               ("requester", "policies:request_status"),
                                               ("policy_admin", "policies:request_detail"),
                                               ("approver", "policies:request_review")])
def test_someone_elses_request_page_shows_only_the_vms_in_the_viewers_scope(client, spanning, request, persona,
                                                                            page):
    client.force_login(request.getfixturevalue(persona))
    response = client.get(reverse(page, args=[spanning.pk]))
    assert response.status_code == 200
    text = response.content.decode()
    inside = spanning.vms.exclude(vm_name="vm-elsewhere").get().vm_name
    assert f'data-vm="{inside}"' in text
    assert "vm-elsewhere" not in text and "51.105.20.9" not in text and 'data-port="1433"' not in text
    assert "also asks for 1 VM outside your scope" in text


def test_the_requests_list_names_only_the_vms_in_the_viewers_scope(client, spanning, policy_admin, requester):
    client.force_login(policy_admin)
    text = client.get(reverse("policies:requests")).content.decode()
    assert f"data-request=\"{spanning.pk}\"" in text
    assert "vm-elsewhere" not in text and "(+1 outside your scope)" in text
    shown, hidden = selectors.vm_rows_shown(spanning, spanning.requester)  # its requester sees every VM
    assert ({row.vm_name for row in shown} >= {"vm-elsewhere"}, len(shown), hidden) == (True, 2, 0)


def test_the_requests_list_search_finds_no_request_by_the_name_of_a_vm_outside_the_viewers_scope(
        client, spanning, policy_admin, django_user_model):
    client.force_login(policy_admin)
    inside = spanning.vms.exclude(vm_name="vm-elsewhere").get().vm_name
    row = f'data-request="{spanning.pk}"'
    assert row in client.get(reverse("policies:requests"), {"q": inside}).content.decode()
    assert row not in client.get(reverse("policies:requests"), {"q": "elsewhere"}).content.decode()
    client.force_login(django_user_model.objects.get(pk=spanning.requester_id))  # its requester sees every VM
    assert row in client.get(reverse("policies:requests"), {"q": "elsewhere"}).content.decode()


def test_the_requests_list_search_finds_no_request_by_a_justification_naming_a_vm_outside_the_admins_scope(
        client, spanning, policy_admin):
    """Its page shows the justification withheld to a policy admin who does not see db-far (named as Azure names a VM,
    in its id): its words find nothing either; a justification naming no such VM is shown, and found, whole."""
    add_named_vm(spanning, f"{OUT_OF_SCOPE}/resourceGroups/rg-pages", "db-far", number=5432)
    AccessRequest.objects.filter(pk=spanning.pk).update(justification="Migrate db-far data, ticket 8812")
    client.force_login(policy_admin)
    row = f'data-request="{spanning.pk}"'
    page = client.get(reverse("policies:request_detail", args=[spanning.pk])).content.decode()
    assert "ticket 8812" not in page
    assert row not in client.get(reverse("policies:requests"), {"q": "ticket 8812"}).content.decode()
    AccessRequest.objects.filter(pk=spanning.pk).update(justification="Migrate the data, ticket 8812")
    assert row in client.get(reverse("policies:requests"), {"q": "ticket 8812"}).content.decode()


def test_the_review_page_is_under_approvals_in_the_navigation(client, spanning, approver):
    client.force_login(approver)
    text = client.get(reverse("policies:request_review", args=[spanning.pk])).content.decode()
    assert f'<a href="{reverse("policies:approvals")}" aria-current="page">' in text
    assert f'<a href="{reverse("policies:requests")}" aria-current="page">' not in text
    listing = client.get(reverse("policies:requests")).content.decode()
    assert f'<a href="{reverse("policies:requests")}" aria-current="page">' in listing
