"""Auditors read the access requests in their audit scope: the request page and its status, read only, and the
Requests list with everyone's requests there. A request spanning their scope and beyond names no VM outside it, in its
rows or in its words (as the audit pages withhold such VMs: ``audit.redaction``)."""
from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import RoleMapping
from policies.access.models import AccessRequest, AccessRequestPort, Approval, ApprovalState
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE
from tests.policies.access.factories import add_named_vm, make_access_request

pytestmark = pytest.mark.django_db

MARKER = "[withheld: outside your scope]"


@pytest.fixture
def theirs(persona_mappings):
    """Someone else's open request on a VM in the personas' scope."""
    return make_access_request(f"{IN_SCOPE}/resourceGroups/rg-audited")


@pytest.fixture
def elsewhere(persona_mappings):
    """Someone else's open request on a VM in a subscription no persona may read."""
    return make_access_request(f"{OUT_OF_SCOPE}/resourceGroups/rg-audited")


@pytest.mark.parametrize("page", ["policies:request_detail", "policies:request_status"])
def test_an_auditor_reads_someone_elses_request_in_their_scope_without_a_control(client, auditor, theirs, page):
    client.force_login(auditor)
    response = client.get(reverse(page, args=[theirs.pk]))
    assert response.status_code == 200
    text = response.content.decode()
    assert 'data-vm="vm-matrix"' in text and 'data-port="22"' in text
    assert "Connection details are shown to the requester only." in text  # the requester's alone, as before
    for control in ('id="close-form"', 'id="close-now"', 'name="duration"', 'id="extend-form"', 'id="decision-form"',
                    'id="review-link"', reverse("policies:request_close", args=[theirs.pk]),
                    reverse("policies:request_extend", args=[theirs.pk]),
                    reverse("policies:request_decide", args=[theirs.pk])):
        assert control not in text, control


def test_an_auditor_gets_a_404_for_a_request_outside_their_scope(client, auditor, elsewhere):
    client.force_login(auditor)
    for page in ("policies:request_detail", "policies:request_status"):
        assert client.get(reverse(page, args=[elsewhere.pk])).status_code == 404
    assert client.post(reverse("policies:request_close", args=[elsewhere.pk])).status_code == 404
    assert client.post(reverse("policies:request_extend", args=[elsewhere.pk]),
                       {"duration": 3600, "token": "a" * 32}).status_code == 404
    assert client.get(reverse("policies:request_review", args=[elsewhere.pk])).status_code == 404


def test_an_auditors_close_extend_or_decision_is_refused_saying_why(client, auditor, theirs):
    """Close and Extend as an approver's or a reader's: the page again, saying who may do it; a decision as a
    reader's (the review and decide URLs are the approvers' object pages: 404 without the role). Nothing changes."""
    client.force_login(auditor)
    page = reverse("policies:request_detail", args=[theirs.pk])
    closed = client.post(reverse("policies:request_close", args=[theirs.pk]), follow=True)
    assert closed.redirect_chain == [(page, 302)]
    assert "Only the requester or a policy admin may close this request." in closed.content.decode()
    extended = client.post(reverse("policies:request_extend", args=[theirs.pk]), {"duration": 3600,
                                                                                  "token": "a" * 32}, follow=True)
    assert extended.redirect_chain == [(page, 302)]
    assert "Only the requester may extend their own request (Azure records them)." in extended.content.decode()
    decided = client.post(reverse("policies:request_decide", args=[theirs.pk]), {"decision": "approve",
                                                                                 "comment": "fine"})
    assert decided.status_code == 404
    theirs.refresh_from_db()
    assert (theirs.closed_at, theirs.approval_state) == (None, ApprovalState.NOT_REQUIRED)
    assert not AccessRequest.objects.filter(extends=theirs).exists() and not Approval.objects.exists()


def test_the_requests_list_shows_an_auditor_everyones_requests_in_their_scope_with_only_mine(client, auditor,
                                                                                               theirs, elsewhere):
    mine = make_access_request(f"{IN_SCOPE}/resourceGroups/rg-audited")
    AccessRequest.objects.filter(pk=mine.pk).update(requester=auditor, state="expired")
    client.force_login(auditor)
    listing = client.get(reverse("policies:requests"))
    text = listing.content.decode()
    assert f'data-request="{theirs.pk}"' in text and f'data-request="{mine.pk}"' in text
    assert f'data-request="{elsewhere.pk}"' not in text
    assert 'name="mine"' in text  # "Only mine", as admins have it
    only_mine = client.get(reverse("policies:requests"), {"mine": "on"}).content.decode()
    assert f'data-request="{mine.pk}"' in only_mine and f'data-request="{theirs.pk}"' not in only_mine
    open_only = client.get(reverse("policies:requests"), {"state": "open"}).content.decode()
    assert f'data-request="{theirs.pk}"' in open_only and f'data-request="{mine.pk}"' not in open_only


def test_the_requests_list_pages_an_auditors_scope(client, auditor, persona_mappings):
    made = [make_access_request(f"{IN_SCOPE}/resourceGroups/rg-audited").pk for _ in range(3)]
    client.force_login(auditor)
    first = client.get(reverse("policies:requests"), {"per_page": "2"})
    page = first.context["table"].seek
    assert [row.pk for row in page.rows] == sorted(made, reverse=True)[:2] and page.next
    second = client.get(reverse("policies:requests"), {"per_page": "2", "after": page.next})
    assert [row.pk for row in second.context["table"].seek.rows] == [min(made)]


@pytest.fixture
def mixed(persona_mappings):
    """Someone else's request on a VM in ``rg-audited`` and on ``sql-secret`` in another resource group of the same
    subscription, whose name its justification, Azure's message on the first VM's port and an approver's comment
    give; the auditor audits ``rg-audited`` only."""
    RoleMapping.objects.filter(source_value="JIT.Auditor").update(scope=f"{IN_SCOPE}/resourceGroups/rg-audited")
    request = make_access_request(f"{IN_SCOPE}/resourceGroups/rg-audited")
    add_named_vm(request, f"{IN_SCOPE}/resourceGroups/rg-hidden", "sql-secret", number=1433, address="51.105.20.9")
    AccessRequestPort.objects.filter(request=request, number=22).update(
        last_error="InvalidOperation: the call for sql-secret port 1433 failed")
    AccessRequest.objects.filter(pk=request.pk).update(justification="Patch sql-secret tonight",
                                                       approval_state=ApprovalState.APPROVED, approvals_required=1)
    from accounts.models import User

    Approval.objects.create(request=request, approver=User.objects.create(username="someone-approving"),
                            approver_name="Someone", decision="approve", comment="ok for sql-secret only")
    return request


@pytest.mark.parametrize("page", ["policies:request_detail", "policies:request_status"])
def test_a_narrow_auditor_sees_nothing_of_the_vm_outside_their_scope(client, auditor, mixed, page):
    client.force_login(auditor)
    response = client.get(reverse(page, args=[mixed.pk]))
    assert response.status_code == 200
    text = response.content.decode()
    assert 'data-vm="vm-matrix"' in text
    assert "sql-secret" not in text and "51.105.20.9" not in text and 'data-port="1433"' not in text
    assert "also asks for 1 VM outside your scope" in text
    assert f"InvalidOperation: {MARKER}" in text  # Azure's code stays, as on the audit pages
    assert text.count(MARKER) == (3 if page == "policies:request_detail" else 2)  # + the justification
    listing = client.get(reverse("policies:requests")).content.decode()
    assert f'data-request="{mixed.pk}"' in listing and "(+1 outside your scope)" in listing
    assert "sql-secret" not in listing


def test_who_sees_every_vm_of_the_mixed_request_reads_it_whole(client, auditor, mixed, django_user_model):
    RoleMapping.objects.filter(source_value="JIT.Auditor").update(scope=IN_SCOPE)  # both groups
    client.force_login(auditor)
    text = client.get(reverse("policies:request_detail", args=[mixed.pk])).content.decode()
    assert "Patch sql-secret tonight" in text and 'data-vm="sql-secret"' in text and MARKER not in text
    client.force_login(django_user_model.objects.get(pk=mixed.requester_id))  # its requester, without a role
    text = client.get(reverse("policies:request_detail", args=[mixed.pk])).content.decode()
    assert "Patch sql-secret tonight" in text and "ok for sql-secret only" in text and MARKER not in text


def _found(client, text: str, request: AccessRequest) -> bool:
    return f'data-request="{request.pk}"' in client.get(reverse("policies:requests"), {"q": text}).content.decode()


def test_the_requests_search_finds_no_request_by_words_its_page_withholds(client, auditor, mixed, django_user_model):
    """The justification 'Patch sql-secret tonight' reads withheld to an auditor of rg-audited alone: neither the hidden
    VM's name nor another word of it finds the request; what the row shows does (its VM, its requester)."""
    client.force_login(auditor)
    assert not _found(client, "sql-secret", mixed) and not _found(client, "tonight", mixed)
    assert _found(client, "vm-matrix", mixed) and _found(client, mixed.requester_name, mixed)
    RoleMapping.objects.filter(source_value="JIT.Auditor").update(scope=IN_SCOPE)  # both groups: read whole
    assert _found(client, "tonight", mixed) and _found(client, "sql-secret", mixed)
    RoleMapping.objects.filter(source_value="JIT.Auditor").update(scope=f"{IN_SCOPE}/resourceGroups/rg-audited")
    client.force_login(django_user_model.objects.get(pk=mixed.requester_id))  # its requester reads it whole
    assert _found(client, "tonight", mixed) and _found(client, "sql-secret", mixed)


def test_the_requests_search_finds_a_justification_shown_whole_though_a_vm_is_not(client, auditor, mixed):
    """A justification naming no VM outside the viewer's scope reads whole on the page (``request_redactor`` leaves
    it unchanged), so its words find the request, though the request has such a VM."""
    AccessRequest.objects.filter(pk=mixed.pk).update(justification="INC-4711: kernel patch on vm-matrix")
    client.force_login(auditor)
    page = client.get(reverse("policies:request_detail", args=[mixed.pk])).content.decode()
    assert "INC-4711: kernel patch on vm-matrix" in page and "(+1" not in page
    assert _found(client, "inc-4711", mixed) and _found(client, "kernel patch", mixed)


def test_the_dashboard_counts_an_auditors_requests_per_state_in_their_scope(client, auditor, theirs, elsewhere):
    """As a policy admin's: the requests the Requests list shows them (not the one outside their scope), each count
    linking to that list."""
    pending = make_access_request(f"{IN_SCOPE}/resourceGroups/rg-audited")
    AccessRequest.objects.filter(pk=pending.pk).update(state="pending")
    client.force_login(auditor)
    page = client.get(reverse("dashboard")).content.decode()
    assert 'id="request-counts"' in page
    for state, label, n in (("open", "Open", 1), ("pending", "Awaiting approval", 1)):
        assert (f'data-state="{state}"><th scope="row">{label}</th>'
                f'<td><a href="/requests/?state={state}">{n}</a></td>') in page


def test_the_vm_page_withholds_what_azures_record_of_a_request_says_of_a_vm_outside_the_viewers_scope(
        client, auditor, persona_mappings):
    """The VM page lists Azure's record of each request on the VM, with its justification: a portal request's says
    what the request's page withholds (here of sql-secret, which this auditor of vm-matrix alone may not read), and
    another's may name the record's other VMs. Both read withheld (escaped, as any text); one naming only the VM
    shown stays whole, and whoever reads every VM reads them all whole."""
    from policies.models import JitPolicy
    from tests.policies.factories import make_vm

    group = f"{IN_SCOPE}/resourceGroups/rg-audited"
    RoleMapping.objects.filter(source_value="JIT.Auditor").update(
        scope=f"{group}/providers/Microsoft.Compute/virtualMachines/vm-matrix")
    request = make_access_request(group)
    hidden = add_named_vm(request, group, "sql-secret", number=1433)
    AccessRequest.objects.filter(pk=request.pk).update(justification="Patch <b>sql-secret</b> tonight")
    request.refresh_from_db()
    matrix = make_vm(group)
    ports = [{"vm": matrix.resource_id, "number": 22, "status": "Initiated"},
             {"vm": hidden.vm_arm_id.lower(), "number": 1433, "status": "Initiated"}]
    JitPolicy.objects.create(
        subscription=matrix.subscription, subscription_key=matrix.subscription_key,
        resource_id=matrix.policy_id.lower(), resource_group="rg-audited", resource_group_name="rg-audited",
        location="westeurope", name="default", requests=[
            {"requestor": request.requester_name, "justification": request.azure_justification,
             "startTimeUtc": "2026-01-02T10:00:00Z", "ports": ports},
            {"requestor": "ops@contoso.example", "justification": "Resize sql-secret disk <i>now</i>",
             "startTimeUtc": "2026-01-02T09:00:00Z", "ports": ports},
            {"requestor": "ops@contoso.example", "justification": "Reboot vm-matrix <i>now</i>",
             "startTimeUtc": "2026-01-02T08:00:00Z", "ports": ports[:1]}])
    client.force_login(auditor)
    page = client.get(reverse("policies:vm_detail", args=[matrix.pk]))
    assert page.status_code == 200
    recent = page.content.decode().split('id="recent-requests"')[1]
    assert "sql-secret" not in recent and "tonight" not in recent and "Resize" not in recent
    assert recent.count(MARKER) == 2 and "Reboot vm-matrix &lt;i&gt;now&lt;/i&gt;" in recent
    RoleMapping.objects.filter(source_value="JIT.Auditor").update(scope=group)  # both VMs: read whole
    recent = client.get(reverse("policies:vm_detail", args=[matrix.pk])).content.decode()
    assert "Patch &lt;b&gt;sql-secret&lt;/b&gt; tonight" in recent and "Resize sql-secret disk" in recent
    assert MARKER not in recent
