"""How many VMs (and fields) one form may send: a crafted selection past the cap of its page is refused with a message
before any VM is read, and the largest request form the portal shows (100 VMs with many ports each) can be sent.

No cloud call happens here: requests and changes are only queued (tasks are captured, not run).
"""
from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from policies.access.forms import AccessRequestForm
from policies.access.models import AccessRequest
from policies.access.views import REQUEST_MAX_VMS
from policies.models import PolicyChange, VirtualMachine, VmState
from policies.views import BULK_ENABLE_MAX
from tests.policies.factories import make_many_vms

pytestmark = pytest.mark.django_db


def vm_statements(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if '"policies_virtualmachine"' in q["sql"]]


@pytest.mark.parametrize("method", ["get", "post"])
def test_enable_jit_on_more_ticked_vms_than_a_save_takes_is_refused_reading_none(client, policy_admin, method):
    """``?vm=`` ids past ``BULK_ENABLE_MAX`` (a page ticks 100 at most): a message, back to the inventory, without
    reading a VM or checking each one's scope."""
    vms = make_many_vms(3)
    client.force_login(policy_admin)
    ids = [str(vms[1].pk)] * 2 + [str(n) for n in range(10**6, 10**6 + BULK_ENABLE_MAX - 1)]
    with CaptureQueriesContext(connection) as queries:
        response = getattr(client, method)(reverse("policies:bulk_enable"), {"vm": ids, "back": "tab=not_configured"})
    assert response.status_code == 302 and not vm_statements(queries)
    assert response["Location"] == reverse("policies:inventory") + "?tab=not_configured"
    page = client.get(response["Location"]).content.decode()
    assert f"{BULK_ENABLE_MAX + 1:,} VMs were selected: one save enables JIT on at most {BULK_ENABLE_MAX:,}." in page
    assert not PolicyChange.objects.exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_request_for_more_ticked_vms_than_a_request_names_is_refused_reading_none(client, requester, method):
    """``vm`` ids past ``REQUEST_MAX_VMS`` (as the API's): a message, back to the Configured tab, no VM read; 100 of
    the same VMs open the form."""
    make_many_vms(3 * (REQUEST_MAX_VMS + 1))
    ids = list(VirtualMachine.objects.filter(state=VmState.CONFIGURED).values_list("pk", flat=True))
    assert len(ids) == REQUEST_MAX_VMS + 1
    client.force_login(requester)
    with CaptureQueriesContext(connection) as queries:
        response = getattr(client, method)(reverse("policies:request_new"), {"vm": ids, "token": "t" * 32})
    assert response.status_code == 302 and not vm_statements(queries)
    assert response["Location"] == reverse("policies:inventory") + "?tab=configured"
    assert f"{REQUEST_MAX_VMS + 1} VMs were selected: one request names at most {REQUEST_MAX_VMS}." in \
        client.get(response["Location"]).content.decode()
    assert client.get(reverse("policies:request_new"), {"vm": ids[:-1]}).status_code == 200
    assert not AccessRequest.objects.exists()


def test_the_largest_request_form_fits_the_fields_the_portal_accepts():
    """A request over ``REQUEST_MAX_VMS`` VMs of 100 ports each (the most the portal writes to a policy: the API's
    list maximum) sends an id per VM, a box per port and the form's other fields, with the CSRF token."""
    from api.serializers import MAX_LIST

    other = len(AccessRequestForm.base_fields)  # its fields but the ports' (a box per port), and the CSRF token
    assert REQUEST_MAX_VMS * (1 + MAX_LIST) + other <= settings.DATA_UPLOAD_MAX_NUMBER_FIELDS


def test_a_request_over_100_vms_of_many_ports_each_is_sent(client, requester, django_capture_on_commit_callbacks):
    """100 VMs of 12 ports each: 1,309 fields, past Django's default 1,000 (a bare 400 page, nothing asked for)."""
    make_many_vms(3 * REQUEST_MAX_VMS)
    ports = [{"number": number, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}
             for number in (22, *range(8000, 8011))]
    VirtualMachine.objects.filter(state=VmState.CONFIGURED).update(ports=ports)
    ids = list(VirtualMachine.objects.filter(state=VmState.CONFIGURED).values_list("pk", flat=True))
    client.force_login(requester)
    page = client.get(reverse("policies:request_new"), {"vm": ids}).content.decode()
    boxes = re.findall(r'name="ports" value="(\d+:\d+)"', page)
    assert len(boxes) == len(ids) * len(ports)
    data = {"vm": ids, "ports": boxes, "source_kind": "ip", "source_ip": "203.0.113.7", "source_range": "",
            "duration": "3600", "justification": "Patch the fleet", "start_at": "", "csrfmiddlewaretoken": "x",
            "token": re.search(r'name="token" value="([0-9a-f]+)"', page).group(1)}
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("policies:request_new"), data)
    access = AccessRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("policies:request_detail",
                                                                           args=[access.pk])
    assert access.vms.count() == len(ids) and access.ports.count() == len(boxes)


def test_a_form_past_the_fields_the_portal_accepts_gets_a_page_saying_what_to_do(client, requester, settings):
    """Past ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` (policies made in Azure with more ports than the portal writes), the 400
    page says to select fewer, in the portal's look; the API answers its JSON error shape."""
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 50
    client.force_login(requester)
    response = client.post(reverse("policies:request_new"), {"vm": ["1"] * 30, "ports": ["1:22"] * 30})
    text = response.content.decode()
    assert response.status_code == 400 and 'id="error-text"' in text
    assert "The form sent more fields than the portal accepts (50), so nothing was done. Go back and select fewer " \
           "VMs or ports, then send it again." in text
    assert not AccessRequest.objects.exists()
