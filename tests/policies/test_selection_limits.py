"""How many VMs one form may send: a crafted selection past the cap of its page is refused with a message before any
VM is read.

No cloud call happens here: requests and changes are only queued (tasks are captured, not run).
"""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

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
