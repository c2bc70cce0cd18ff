"""Access request services against the emulator through the real SDK; tasks' services run in this process."""
from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from cloud.azure import AzureGateway
from policies.access import services
from policies.access.models import AccessRequest, AccessRequestPort, PortState
from policies.gateway import credential_spec, endpoint_for
from tests.plugins.personas import OUT_OF_SCOPE
from tests.policies.access.factories import MY_IP, ask, lower_maximum, open_all, states, vm
from tests.policies.azure_side import Azure, vm_id
from tests.policies.factories import Unexpected, make_vm, sync

pytestmark = pytest.mark.django_db(transaction=True)
INITIATE = "/initiate"


def initiates(emu) -> list[dict]:
    return [c for c in emu.calls() if c["method"] == "POST" and c["path"].endswith(INITIATE)]


def allow_rules(emu, group: str, name: str) -> list[dict]:
    return list(Azure(emu).jit_rules(vm_id(group, name), "Allow").values())


def test_it_opens_the_port_for_exactly_the_requested_source(prod, requester, fresh_emulator):
    request = ask(requester, {"web-02": [22]})
    assert states(request) == {("web-02", 22): "queued"}
    assert open_all(request) == ["open"]
    port = AccessRequestPort.objects.get(request=request)
    assert (port.state, port.azure_status, port.attempts) == ("open", "Initiated", 1)
    rules = allow_rules(fresh_emulator, "rg-web-prod", "web-02")
    assert [(r["sourceAddressPrefix"], r["destinationPortRange"]) for r in rules] == [(f"{MY_IP}/32", "22")]
    policy = Azure(fresh_emulator).policy("rg-web-prod", "westeurope")
    mine = [r for r in policy.requests if str(request.correlation_id) in (r.justification or "")]
    assert len(mine) == 1 and "alice@contoso.example" in mine[0].justification
    assert "Patch the kernel" in mine[0].justification and f"#{request.pk}" in mine[0].justification
    assert AuditEvent.objects.filter(action="access.requested").count() == 1
    assert AuditEvent.objects.filter(action="access.opened").count() == 1
    assert vm("web-02").last_user == "alice@contoso.example"


def test_the_next_sync_keeps_the_person_as_last_user_not_the_portals_identity(prod, requester, fresh_emulator):
    request = ask(requester, {"web-02": [22]})
    assert open_all(request) == ["open"]
    policy = Azure(fresh_emulator).policy("rg-web-prod", "westeurope")
    [mine] = [r for r in policy.requests if str(request.correlation_id) in (r.justification or "")]
    assert mine.requestor != "alice@contoso.example"  # Azure names whoever called initiate: the portal
    sync(prod)
    assert vm("web-02").last_user == "alice@contoso.example"
    assert vm("web-02").approved_requests_7d >= 1


def test_a_justification_naming_a_portal_request_of_another_vm_names_nobody(prod, requester, fresh_emulator):
    request = ask(requester, {"web-02": [22]})
    assert open_all(request) == ["open"]
    other = vm("web-01")
    gateway = services.gateway_for(prod)
    gateway.initiate_jit(other.policy_resource_group, other.policy_location, other.policy_name, [
        {"id": other.arm_id, "ports": [{"number": 22, "end_time_utc": timezone.now() + timedelta(hours=1),
                                         "allowed_source_address_prefix": "198.51.100.7/32"}]}],
        justification=request.azure_justification)
    sync(prod)
    assert vm("web-01").last_user not in ("", "alice@contoso.example")
    # The right VM and id but another request number: not the portal's either.
    web02 = vm("web-02")
    gateway.initiate_jit(web02.policy_resource_group, web02.policy_location, web02.policy_name, [
        {"id": web02.arm_id, "ports": [{"number": 22, "end_time_utc": timezone.now() + timedelta(hours=1),
                                         "allowed_source_address_prefix": "198.51.100.8/32"}]}],
        justification=request.azure_justification.replace(f"#{request.pk},", f"#{request.pk + 1},"))
    sync(prod)
    assert vm("web-02").last_user not in ("", "alice@contoso.example")


def test_a_newer_request_on_the_same_port_replaces_the_older_ones_access(prod, requester, reader, fresh_emulator):
    from notifications.models import PendingEvent

    alices = ask(requester, {"web-02": [22]})
    assert open_all(alices) == ["open"]
    alices.ports.update(opened_at=timezone.now() - timedelta(minutes=1))  # opened a while before frank asks
    franks = ask(reader, {"web-02": [22]}, source="198.51.100.60/32")
    assert open_all(franks) == ["open"]
    # Azure keeps one allow rule per VM port: frank's source replaced alice's, and Azure says so.
    rules = allow_rules(fresh_emulator, "rg-web-prod", "web-02")
    assert [r["sourceAddressPrefix"] for r in rules] == ["198.51.100.60/32"]
    # Alice's port was open before frank's run claimed his, so it is certainly the older: closed at once.
    assert services.reconcile()["revoked"] == 0
    alices.refresh_from_db()
    port = alices.ports.get()
    assert (alices.state, port.state, port.azure_status, port.azure_status_reason) == (
        "closed", "closed", "Revoked", "NewerRequestInitiated")
    event = AuditEvent.objects.get(action="access.revoked_in_azure")
    assert (event.correlation_id, event.after["reason"]) == (str(alices.correlation_id), "NewerRequestInitiated")
    told = PendingEvent.objects.get(event="closed")
    assert (told.request_id, told.detail["reason"]) == (alices.pk, "revoked")
    franks.refresh_from_db()
    assert franks.state == "open"
    assert services.revoked_in_azure() == 0


def test_when_the_order_in_azure_is_uncertain_the_reconciler_reads_it(prod, requester, reader, fresh_emulator):
    alices = ask(requester, {"web-02": [22]})
    assert open_all(alices) == ["open"]
    # As if alice's answer were recorded only after frank's run claimed his port: which reached Azure first is
    # not known here, so frank's open leaves alice's port alone and the reconciler asks Azure.
    alices.ports.update(opened_at=timezone.now() + timedelta(minutes=1))
    franks = ask(reader, {"web-02": [22]}, source="198.51.100.61/32")
    assert open_all(franks) == ["open"]
    assert alices.ports.get().state == "open"
    assert services.reconcile()["revoked"] == 1
    assert alices.ports.get().azure_status_reason == "NewerRequestInitiated"


def test_the_reconciler_closes_access_azure_revoked_outside_the_portal(prod, requester, fresh_emulator):
    from notifications.models import PendingEvent

    mine = ask(requester, {"web-02": [22], "web-04": [22]})
    assert open_all(mine) == ["open"]
    assert services.revoked_in_azure() == 0  # nothing revoked: nothing changes, and asking again is harmless
    web02 = vm("web-02")
    services.gateway_for(prod).initiate_jit(  # someone opens web-02:22 in Azure directly
        web02.policy_resource_group, web02.policy_location, web02.policy_name, [
            {"id": web02.arm_id, "ports": [{"number": 22, "end_time_utc": timezone.now() + timedelta(hours=1),
                                             "allowed_source_address_prefix": "198.51.100.9/32"}]}],
        justification="from the Azure portal")
    assert services.reconcile()["revoked"] == 1
    assert states(mine) == {("web-02", 22): "closed", ("web-04", 22): "open"}
    port = AccessRequestPort.objects.get(request=mine, request_vm__vm_name="web-02")
    assert (port.azure_status, port.azure_status_reason) == ("Revoked", "NewerRequestInitiated")
    assert AuditEvent.objects.filter(action="access.revoked_in_azure", target_label="web-02").count() == 1
    assert services.revoked_in_azure() == 0
    mine.refresh_from_db()
    assert mine.state == "open"  # web-04 is still open: the requester hears when the request is over
    assert not PendingEvent.objects.filter(event="closed").exists()


def test_it_refuses_a_window_longer_than_the_ports_maximum(prod, requester):
    with pytest.raises(ValidationError, match="at most 3 h"):
        ask(requester, {"web-02": [22]}, hours=4)
    assert not AccessRequest.objects.exists()


def test_it_refuses_a_port_not_in_the_policy(prod, requester):
    with pytest.raises(ValidationError, match=r"^\['Port 3389 is not in the JIT policy of web-02\.'\]$"):
        ask(requester, {"web-02": [3389]})


@pytest.mark.parametrize(("source", "message"), [
    ("*", "does not allow any source"),  # the policy of web-03 allows two proxy ranges only
    ("10.1.2.3/32", "not allowed for port 22"),
    ("203.0.0.0/16", "not allowed for port 22"),
])
def test_it_refuses_a_source_the_policy_does_not_allow(prod, requester, source, message):
    with pytest.raises(ValidationError, match=message):
        ask(requester, {"web-03": [22]}, source=source)
    assert not AccessRequest.objects.exists()


def test_it_refuses_a_range_wider_than_the_portal_accepts(prod, requester):
    with pytest.raises(ValidationError, match="too wide"):
        ask(requester, {"web-02": [22]}, source="0.0.0.0/1")


def test_a_proxy_range_inside_the_policys_sources_opens(prod, requester, fresh_emulator):
    request = ask(requester, {"web-03": [22]}, source="203.0.113.0/24")
    assert open_all(request) == ["open"]
    assert [r["sourceAddressPrefix"] for r in allow_rules(fresh_emulator, "rg-web-prod", "web-03")] == [
        "203.0.113.0/24"]


def test_a_vm_out_of_the_users_scope_is_refused(prod, requester):
    outside = make_vm(f"{OUT_OF_SCOPE}/resourceGroups/rg-dev")
    with pytest.raises(PermissionDenied):
        services.request_create(actor=requester, selections=[services.Selection(outside, (22,))],
                                source_prefix=f"{MY_IP}/32", duration=timedelta(hours=1), justification="x",
                                idempotency_key="k-out")
    assert not AccessRequest.objects.exists()


def test_a_second_submit_of_the_same_form_is_the_same_request(prod, requester, fresh_emulator):
    first = ask(requester, {"web-02": [22]}, key="form-token-1")
    second = ask(requester, {"web-02": [22]}, key="form-token-1")
    assert first.pk == second.pk and AccessRequest.objects.count() == 1
    assert open_all(first) == ["open"] and open_all(second) == ["skipped"]
    assert len(initiates(fresh_emulator)) == 1


def test_a_request_over_two_policies_initiates_once_per_policy(prod, requester, fresh_emulator):
    request = ask(requester, {"web-02": [22], "jump-02": [22], "web-04": [22]})
    assert open_all(request) == ["open", "open"]
    assert len(initiates(fresh_emulator)) == 2
    assert set(states(request).values()) == {"open"}


class Meanwhile:
    """The request's gateway, doing ``meanwhile`` to the request while Azure answers its ``initiate``."""

    def __init__(self, vm_name: str, meanwhile) -> None:
        self.gateway = services.gateway_for(vm(vm_name).subscription)
        self.meanwhile = meanwhile

    def __getattr__(self, name: str):
        return getattr(self.gateway, name)

    def initiate_jit(self, *args, **kwargs):
        answer = self.gateway.initiate_jit(*args, **kwargs)
        self.meanwhile()
        return answer


def test_a_request_closed_while_azure_opens_it_goes_to_the_close_task_once_open(prod, requester, fresh_emulator,
                                                                                monkeypatch):
    request = ask(requester, {"web-02": [22]})
    sent = []
    monkeypatch.setattr(services.closing, "enqueue_close", sent.append)  # where "Close now" sends it
    monkeypatch.setattr(services.opening, "enqueue_close", sent.append)  # and where the open task does
    gateway = Meanwhile("web-02", lambda: services.request_close(actor=requester, request=request))
    outcome = services.request_open(request_id=request.pk, policy_key=vm("web-02").policy_id.lower(), gateway=gateway)
    assert outcome.state == "open"
    assert sent == [request.pk, request.pk]  # by "Close now" (nothing was open yet), then once the port opened
    assert services.request_close_apply(request_id=request.pk).state == "closed"
    assert allow_rules(fresh_emulator, "rg-web-prod", "web-02") == []
    request.refresh_from_db()
    assert request.state == "closed"


class CloseFirst(Meanwhile):
    """The request's gateway, doing ``meanwhile`` while its ``initiate`` is on its way, before Azure answers."""

    def initiate_jit(self, *args, **kwargs):
        self.meanwhile()
        return self.gateway.initiate_jit(*args, **kwargs)


def test_a_request_closed_while_its_initiate_is_throttled_is_cancelled_not_opened_by_a_retry(
        prod, requester, fresh_emulator, monkeypatch):
    fresh_emulator.add_fault(INITIATE, method="POST", count=1, kind="429")  # retryable: the task would run again
    request = ask(requester, {"web-02": [22]})
    monkeypatch.setattr(services.closing, "enqueue_close", lambda pk: None)
    key = vm("web-02").policy_id.lower()
    gateway = CloseFirst("web-02", lambda: services.request_close(actor=requester, request=request))
    outcome = services.request_open(request_id=request.pk, policy_key=key, gateway=gateway)
    assert outcome.retry_after is None  # Close now came first: nothing is left to retry
    assert states(request) == {("web-02", 22): "closed"}
    # Neither the task's retry nor the reconciler's re-send opens what the requester cancelled.
    assert services.request_open(request_id=request.pk, policy_key=key).state == "skipped"
    services.reconcile(enqueue=lambda request_id, policy_key: services.request_open(request_id=request_id,
                                                                                    policy_key=policy_key))
    assert [c["status"] for c in initiates(fresh_emulator)] == [429]
    assert allow_rules(fresh_emulator, "rg-web-prod", "web-02") == []
    request.refresh_from_db()
    assert request.state == "closed"
    page_port = AccessRequestPort.objects.get(request=request)
    assert page_port.last_error == "Cancelled before it opened." and page_port.opened_at is None


def impatient(gateway: CloseFirst) -> CloseFirst:
    """``gateway`` waiting half a second for an answer: a slow ``initiate`` times out (``Transient``) while Azure
    still acts on it."""
    subscription = vm("web-02").subscription
    gateway.gateway = AzureGateway(subscription.subscription_id, credential_spec(subscription),
                                   replace(endpoint_for(subscription), read_timeout=0.5, retry_total=0))
    return gateway


def test_a_request_closed_while_its_initiate_times_out_and_azure_opens_it_is_closed_in_azure(
        prod, requester, fresh_emulator, monkeypatch):
    """A timeout (or a 5xx) leaves unknown whether Azure acted: here it did, after the portal stopped waiting. Close
    now came meanwhile: the retry finds Azure's record and the close task takes the access away, rather than the
    port being called cancelled before it opened while Azure keeps it open until its end."""
    fresh_emulator.add_fault(INITIATE, method="POST", count=1, kind="slow", delay=1.5)
    request = ask(requester, {"web-02": [22]})
    sent = []
    monkeypatch.setattr(services.closing, "enqueue_close", sent.append)
    monkeypatch.setattr(services.opening, "enqueue_close", sent.append)
    key = vm("web-02").policy_id.lower()
    gateway = impatient(CloseFirst("web-02", lambda: services.request_close(actor=requester, request=request)))
    services.request_open(request_id=request.pk, policy_key=key, gateway=gateway)
    deadline = time.monotonic() + 10
    while not allow_rules(fresh_emulator, "rg-web-prod", "web-02") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert allow_rules(fresh_emulator, "rg-web-prod", "web-02")  # Azure opened it, after the portal stopped waiting
    services.request_open(request_id=request.pk, policy_key=key)  # the task's retry
    for request_id in sent:  # the close tasks sent (by Close now, and once the port is known open)
        services.request_close_apply(request_id=request_id)
    assert allow_rules(fresh_emulator, "rg-web-prod", "web-02") == []  # not left open until its end
    assert sent == [request.pk, request.pk] and len(initiates(fresh_emulator)) == 1  # found, not sent again
    assert states(request) == {("web-02", 22): "closed"}
    request.refresh_from_db()
    assert request.state == "closed"


def test_a_request_closed_while_its_initiate_fails_is_cancelled_by_the_retry_not_sent_again(
        prod, requester, fresh_emulator, monkeypatch):
    """A 500 may come after Azure acted, so the ports are queued again; the retry finds nothing of the request in
    Azure and, Close now having come, cancels them instead of sending the initiate again."""
    fresh_emulator.add_fault(INITIATE, method="POST", count=1, kind="500")
    request = ask(requester, {"web-02": [22]})
    monkeypatch.setattr(services.closing, "enqueue_close", lambda pk: None)
    key = vm("web-02").policy_id.lower()
    gateway = CloseFirst("web-02", lambda: services.request_close(actor=requester, request=request))
    assert services.request_open(request_id=request.pk, policy_key=key, gateway=gateway).state == "queued"
    assert services.request_open(request_id=request.pk, policy_key=key).state == "closed"
    services.reconcile(enqueue=lambda request_id, policy_key: services.request_open(request_id=request_id,
                                                                                    policy_key=policy_key))
    assert [c["status"] for c in initiates(fresh_emulator)] == [500]
    assert allow_rules(fresh_emulator, "rg-web-prod", "web-02") == []
    request.refresh_from_db()
    assert request.state == "closed"
    port = AccessRequestPort.objects.get(request=request)
    assert (port.state, port.last_error, port.opened_at) == ("closed", "Cancelled before it opened.", None)


def test_the_retry_finds_azures_record_of_its_own_request_not_one_whose_justification_quotes_its_id(
        prod, requester, fresh_emulator):
    """A 500 may come after Azure acted, so the retry looks in Azure first, by the request's id: another request's
    justification quoting that id (typed by its requester) is not taken for the request's own record, which would
    show it open with no rule of its own in Azure."""
    fresh_emulator.add_fault(INITIATE, method="POST", count=1, kind="500")
    request = ask(requester, {"web-02": [22]})
    assert open_all(request) == ["queued"]
    quoting = ask(requester, {"web-02": [22]}, source="198.51.100.7/32",
                  justification=f"Same change as portal request #{request.pk}, {request.correlation_id})")
    assert open_all(quoting) == ["open"]
    assert open_all(request) == ["open"]
    assert [c["status"] for c in initiates(fresh_emulator)] == [500, 202, 202]
    assert [r["sourceAddressPrefix"] for r in allow_rules(fresh_emulator, "rg-web-prod", "web-02")] == [f"{MY_IP}/32"]
    policy = Azure(fresh_emulator).policy("rg-web-prod", "westeurope")
    [own] = [r for r in policy.requests if r.justification.endswith(f"#{request.pk}, {request.correlation_id})")]
    assert own.virtual_machines[0].ports[0].status == "Initiated"


def test_a_port_failed_while_azure_answered_stays_failed_and_the_others_open(prod, requester, fresh_emulator):
    request = ask(requester, {"web-02": [22], "web-04": [22]})
    failed = AccessRequestPort.objects.get(request=request, request_vm__vm_name="web-04")
    gateway = Meanwhile("web-02", lambda: services.request_mark_failed(port_ids=[failed.pk], message="Given up"))
    assert services.request_open(request_id=request.pk, policy_key=failed.policy_key, gateway=gateway).state == "open"
    assert states(request) == {("web-02", 22): "open", ("web-04", 22): "failed"}
    request.refresh_from_db()
    assert request.state == "open"
    [opened] = AuditEvent.objects.filter(action="access.opened")
    assert opened.target_label == "web-02"


@pytest.mark.parametrize("fault", [{"kind": "429"}, {"kind": "429", "retry_after": 1}, {"kind": "500"},
                                   {"kind": "503"}], ids=["429-no-retry-after", "429-retry-after", "500", "503"])
def test_throttling_and_server_errors_end_open_with_one_initiate(prod, requester, fresh_emulator, fault):
    fresh_emulator.add_fault(INITIATE, method="POST", count=2, **fault)
    request = ask(requester, {"web-02": [22]})
    outcome = services.request_open(request_id=request.pk, policy_key=vm("web-02").policy_id.lower())
    assert outcome.state == "queued" and outcome.retry_after is not None and outcome.retry_after < 3600
    port = AccessRequestPort.objects.get(request=request)
    assert port.state == "queued" and port.last_error.startswith("Retrying")
    for _ in range(3):  # what the task's retries do
        outcome = services.request_open(request_id=request.pk, policy_key=port.policy_key)
        if outcome.state == "open":
            break
    assert outcome.state == "open"
    accepted = [c for c in initiates(fresh_emulator) if c["status"] == 202]
    assert len(accepted) == 1
    assert len(allow_rules(fresh_emulator, "rg-web-prod", "web-02")) == 1


def test_a_retry_after_azure_acted_finds_the_request_and_does_not_initiate_again(prod, requester, fresh_emulator):
    request = ask(requester, {"web-02": [22]})
    key = vm("web-02").policy_id.lower()
    assert open_all(request) == ["open"]
    # As if the answer had been lost: the row is back in "opening", stale, and a worker retries.
    AccessRequestPort.objects.filter(request=request).update(state="opening",
                                                             claimed_at=timezone.now() - timedelta(hours=1))
    assert services.request_open(request_id=request.pk, policy_key=key).state == "open"
    assert len(initiates(fresh_emulator)) == 1


WEB_POLICY = (r"/resourceGroups/rg-web-prod/providers/Microsoft\.Security/locations/westeurope/"
              r"jitNetworkAccessPolicies/default$")
UNREADABLE = {"nulls": "UnreadableAnswer: Azure's answer could not be read: AttributeError: 'NoneType' object has no "
                       "attribute 'id'",
              "garbled": "UnreadableAnswer: Azure's answer could not be read: DecodeError: JSON is invalid: "}


@pytest.mark.parametrize("kind", ["nulls", "garbled"])
def test_an_unreadable_answer_to_initiate_is_retried_with_its_reason_and_the_retry_finds_it_open(
        prod, requester, fresh_emulator, kind):
    """Azure opened the port but its answer could not be read (a null where a VM belongs, or not JSON at all): not
    known to have failed, so the port goes back to the queue saying why, and the retry finds the request in Azure
    (one initiate) instead of failing a port Azure holds open."""
    request = ask(requester, {"web-02": [22]})
    key = vm("web-02").policy_id.lower()
    fresh_emulator.add_fault(INITIATE, kind, method="POST", count=1)
    outcome = services.request_open(request_id=request.pk, policy_key=key)
    assert outcome.state == "queued" and outcome.retry_after is not None and outcome.retry_after < 3600
    port = AccessRequestPort.objects.get(request=request)
    assert port.state == "queued" and port.last_error.startswith(f"Retrying: {UNREADABLE[kind]}")
    request.refresh_from_db()
    assert request.state == "queued"
    assert services.request_open(request_id=request.pk, policy_key=key).state == "open"
    assert len(initiates(fresh_emulator)) == 1
    port.refresh_from_db()
    assert (port.state, port.azure_status, port.last_error) == ("open", "Initiated", "")


def test_an_unreadable_policy_on_a_retry_is_retried_with_its_reason(prod, requester, fresh_emulator):
    """A retry reads the policy first (an earlier attempt may have reached Azure); when that answer cannot be read,
    the port is queued again saying why, not failed while Azure may hold it open; the next attempt finds nothing
    there and opens it with one initiate."""
    request = ask(requester, {"web-02": [22]})
    key = vm("web-02").policy_id.lower()
    AccessRequestPort.objects.filter(request=request).update(attempts=1)  # a retry: it reads the policy first
    fresh_emulator.add_fault(WEB_POLICY, "nulls", method="GET", count=1)
    assert services.request_open(request_id=request.pk, policy_key=key).state == "queued"
    port = AccessRequestPort.objects.get(request=request)
    assert (port.state, port.last_error) == ("queued", f"Retrying: {UNREADABLE['nulls']}")
    assert initiates(fresh_emulator) == []
    assert services.request_open(request_id=request.pk, policy_key=key).state == "open"
    assert len(initiates(fresh_emulator)) == 1


def shown(user, request: AccessRequest) -> tuple[str, list[str]]:
    """The request's page as ``user`` reads it, and its ports' reasons as the API gives them."""
    import html

    from django.test import Client
    from django.urls import reverse

    from tests.api.conftest import ApiClient, token_of

    client = Client()
    client.force_login(user)
    page = html.unescape(client.get(reverse("policies:request_detail", args=[request.pk])).content.decode())
    body = ApiClient(token_of(user)).get(f"/api/v1/requests/{request.pk}/").json()
    return page, [port["error"] for vm_entry in body["virtualMachines"] for port in vm_entry["ports"]]


def test_a_bug_before_anything_reached_azure_is_not_taken_for_azures_answer(prod, requester, fresh_emulator,
                                                                            monkeypatch, settings):
    """An exception that is not the gateway's (here: its gateway cannot be made, a TypeError) is a bug, not a cloud
    failure: it leaves the service with its stack (the worker logs it) and the claimed port stays "opening" for the
    reconciler, saying why on the request's page and in the API; the reconciler sends it again and, past its
    attempts, fails it; nothing reached Azure."""
    from policies.access.services import opening

    def broken(subscription):
        raise TypeError("'NoneType' object is not iterable")

    request = ask(requester, {"web-02": [22]})
    key = vm("web-02").policy_id.lower()
    monkeypatch.setattr(opening, "gateway_for", broken)
    with pytest.raises(TypeError):
        services.request_open(request_id=request.pk, policy_key=key)
    port = AccessRequestPort.objects.get(request=request)
    reason = "Retrying: Unexpected error: TypeError: 'NoneType' object is not iterable"
    assert (port.state, port.attempts, port.last_error) == ("opening", 1, reason)
    assert initiates(fresh_emulator) == []
    page, errors = shown(requester, request)
    assert reason in page and "Traceback" not in page and errors == [reason]
    # the claim stands: a redelivery of the task takes nothing until the reconciler sends it again
    assert services.request_open(request_id=request.pk, policy_key=key).state == "skipped"
    monkeypatch.undo()
    AccessRequestPort.objects.filter(pk=port.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=settings.ACCESS_STUCK_SECONDS + 5))
    sent = []
    assert services.reconcile(enqueue=lambda *args: sent.append(args))["resent"] == 1
    assert services.request_open(request_id=request.pk, policy_key=key).state == "open"
    port.refresh_from_db()
    assert (port.state, port.last_error, len(initiates(fresh_emulator))) == ("open", "", 1)


def test_a_bug_after_the_initiate_reached_azure_says_why_and_the_retry_finds_it_without_a_second_initiate(
        prod, requester, fresh_emulator, settings):
    """Azure opened the port, then the run met a bug (an exception that is not the gateway's): the port stays
    claimed saying why; the next attempt looks in Azure first and records it open, with one initiate in all."""
    request = ask(requester, {"web-02": [22]})
    key = vm("web-02").policy_id.lower()
    gateway = Unexpected(services.gateway_for(prod), "initiate_jit", KeyError("virtualMachines"), after=True)
    with pytest.raises(KeyError):
        services.request_open(request_id=request.pk, policy_key=key, gateway=gateway)
    port = AccessRequestPort.objects.get(request=request)
    reason = "Retrying: Unexpected error: KeyError: 'virtualMachines'"
    assert (port.state, port.last_error) == ("opening", reason)
    assert shown(requester, request)[1] == [reason]
    AccessRequestPort.objects.filter(pk=port.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=settings.ACCESS_STUCK_SECONDS + 5))
    assert services.request_open(request_id=request.pk, policy_key=key).state == "open"
    port.refresh_from_db()
    assert (port.state, port.last_error, len(initiates(fresh_emulator))) == ("open", "", 1)


def test_a_bug_in_the_last_attempt_is_the_reason_the_reconciler_gives_when_it_fails_the_port(
        prod, requester, fresh_emulator, monkeypatch, settings):
    """No retry follows the last attempt: its port says the bug without "Retrying", and the reconciler, finding
    nothing in Azure, fails it with that reason."""
    from policies.access.services import opening

    request = ask(requester, {"web-02": [22]})
    key = vm("web-02").policy_id.lower()
    AccessRequestPort.objects.filter(request=request).update(attempts=settings.ACCESS_MAX_ATTEMPTS - 1)
    monkeypatch.setattr(opening, "gateway_for", lambda subscription: Unexpected(
        services.gateway_for(subscription), "get_jit_policy", KeyError("properties")))
    with pytest.raises(KeyError):
        services.request_open(request_id=request.pk, policy_key=key)
    port = AccessRequestPort.objects.get(request=request)
    assert (port.state, port.last_error) == ("opening", "Unexpected error: KeyError: 'properties'")
    monkeypatch.undo()
    AccessRequestPort.objects.filter(pk=port.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=settings.ACCESS_STUCK_SECONDS + 5))
    assert services.reconcile(enqueue=lambda *args: None)["failed"] == 1
    port.refresh_from_db()
    assert (port.state, port.last_error) == (
        "failed", f"Gave up after {settings.ACCESS_MAX_ATTEMPTS} attempts. Last error: Unexpected error: "
                  "KeyError: 'properties'")
    assert initiates(fresh_emulator) == []


def test_a_bug_in_the_open_task_fails_the_task_with_its_stack_and_says_why_on_the_port(
        prod, requester, fresh_emulator, monkeypatch):
    """Through the Celery task (eager here): the task fails with the exception (the worker logs its stack), the
    port says why."""
    from policies.access import tasks
    from policies.access.services import opening

    def broken(subscription):
        raise TypeError("'NoneType' object is not iterable")

    request = ask(requester, {"web-02": [22]})
    monkeypatch.setattr(opening, "gateway_for", broken)
    result = tasks.open_ports.apply(args=[request.pk, vm("web-02").policy_id.lower()])
    assert result.failed() and isinstance(result.result, TypeError)
    port = AccessRequestPort.objects.get(request=request)
    assert (port.state, port.last_error) == (
        "opening", "Retrying: Unexpected error: TypeError: 'NoneType' object is not iterable")


def test_an_initiate_that_keeps_raising_fails_after_its_attempts_and_the_request_page_says_why(
        prod, requester, client, settings, monkeypatch, fresh_emulator):
    """The open task (Celery, eager: its retries run at once) against an answer it can never read: bounded by
    ``ACCESS_MAX_ATTEMPTS``, then failed with the reason, which the request's page shows."""
    import html

    from django.urls import reverse

    from policies.access import tasks

    settings.ACCESS_MAX_ATTEMPTS = 3
    request = ask(requester, {"web-02": [22]})
    fresh_emulator.add_fault(INITIATE, "nulls", method="POST")
    fresh_emulator.add_fault(WEB_POLICY, "nulls", method="GET")  # each retry's look in Azure cannot read it either
    tasks.open_ports.apply(args=[request.pk, vm("web-02").policy_id.lower()])
    port = AccessRequestPort.objects.get(request=request)
    assert (port.state, port.attempts) == ("failed", 3)
    assert port.last_error == UNREADABLE["nulls"]
    assert AccessRequest.objects.get(pk=request.pk).state == "failed"
    client.force_login(requester)
    page = html.unescape(client.get(reverse("policies:request_detail", args=[request.pk])).content.decode())
    assert UNREADABLE["nulls"] in page and "Traceback" not in page


def test_a_bug_in_close_now_is_not_taken_for_azures_answer(prod, requester, fresh_emulator):
    """An exception that is not the gateway's (here: raised by it, as a bug would) leaves the close task with its
    stack, the port still open for the reconciler's next send, saying why on the request's page and in the API
    (not that Azure failed); sent again, the close removes the rule and the reason goes."""
    request = ask(requester, {"web-02": [22]})
    assert open_all(request) == ["open"]
    services.request_close(actor=requester, request=request)
    gateway = Unexpected(services.gateway_for(prod), "get_network_security_group", KeyError("securityRules"))
    with pytest.raises(KeyError):
        services.request_close_apply(request_id=request.pk, gateway=gateway)
    reason = "Closing failed: Unexpected error: KeyError: 'securityRules'"
    assert AccessRequestPort.objects.filter(request=request, state="open", last_error=reason).count() == 1
    assert len(allow_rules(fresh_emulator, "rg-web-prod", "web-02")) == 1
    page, errors = shown(requester, request)
    assert reason in page and "Traceback" not in page and errors == [reason]
    assert services.request_close_apply(request_id=request.pk).state == "closed"  # as the reconciler sends it again
    assert allow_rules(fresh_emulator, "rg-web-prod", "web-02") == []
    assert AccessRequestPort.objects.get(request=request).last_error == ""


def test_close_now_meeting_an_unreadable_answer_keeps_the_port_open_saying_why_and_closes_when_sent_again(
        prod, requester, client, fresh_emulator):
    import html

    from django.urls import reverse

    request = ask(requester, {"web-02": [22]})
    assert open_all(request) == ["open"]
    services.request_close(actor=requester, request=request)
    fresh_emulator.add_fault("/networkSecurityGroups/", "nulls", method="GET", count=1)
    outcome = services.request_close_apply(request_id=request.pk)
    assert (outcome.state, outcome.retry_after) == ("open", None)
    port = AccessRequestPort.objects.get(request=request)
    message = ("Closing failed: UnreadableAnswer: Azure's answer could not be read: AttributeError: 'NoneType' "
               "object has no attribute 'name'")
    assert (port.state, port.last_error) == ("open", message)  # its allow rule is still there: it is still open
    assert len(allow_rules(fresh_emulator, "rg-web-prod", "web-02")) == 1
    client.force_login(requester)
    page = html.unescape(client.get(reverse("policies:request_detail", args=[request.pk])).content.decode())
    assert message in page
    assert services.request_close_apply(request_id=request.pk).state == "closed"  # as the reconciler sends it again
    assert allow_rules(fresh_emulator, "rg-web-prod", "web-02") == []
    assert AccessRequestPort.objects.get(request=request).last_error == ""


def test_a_retry_that_finds_its_earlier_initiate_never_closes_a_newer_request(prod, requester, reader,
                                                                              fresh_emulator):
    alices = ask(requester, {"web-02": [22]})
    key = vm("web-02").policy_id.lower()
    assert open_all(alices) == ["open"]
    # Alice's answer was lost (her rows went back to "opening"); meanwhile frank's request took the port in Azure.
    AccessRequestPort.objects.filter(request=alices).update(state="opening",
                                                            claimed_at=timezone.now() - timedelta(hours=1))
    franks = ask(reader, {"web-02": [22]}, source="198.51.100.62/32")
    assert open_all(franks) == ["open"]
    AccessRequestPort.objects.filter(request=franks).update(opened_at=timezone.now() - timedelta(minutes=1))
    # Alice's retry finds her own earlier initiate in Azure: it did not initiate, so it is not the newer one.
    assert services.request_open(request_id=alices.pk, policy_key=key).state == "open"
    assert franks.ports.get().state == "open"
    assert services.reconcile()["revoked"] == 1  # Azure says whose access stands: frank's
    assert (alices.ports.get().state, franks.ports.get().state) == ("closed", "open")


def test_a_firewall_vm_gets_the_dnat_mapping_as_connection_details(prod, requester, fresh_emulator):
    request = ask(requester, {"db-01": [22]})
    assert open_all(request) == ["open"]
    port = AccessRequestPort.objects.select_related("request_vm").get(request=request)
    assert port.mapped_port and port.request_vm.address == "20.50.10.4"
    from policies.access.selectors import port_connection

    details = port_connection(port)
    assert details.endpoint == f"20.50.10.4:{port.mapped_port}"
    assert details.ssh_line("alice") == f"ssh alice@20.50.10.4 -p {port.mapped_port}"


def test_close_now_removes_the_allow_rule_and_records_it(prod, requester, fresh_emulator):
    request = ask(requester, {"web-02": [22]})
    open_all(request)
    services.request_close(actor=requester, request=request)
    assert services.request_close_apply(request_id=request.pk).state == "closed"
    assert allow_rules(fresh_emulator, "rg-web-prod", "web-02") == []
    assert Azure(fresh_emulator).jit_ports(vm_id("rg-web-prod", "web-02")) == {22}  # the deny rule stays
    request.refresh_from_db()
    assert request.state == "closed" and request.closed_by == requester
    assert AuditEvent.objects.filter(action__in=["access.close_requested", "access.closed"]).count() == 2


def test_close_now_leaves_another_vms_allow_rule_for_the_same_port_and_source_in_a_shared_nsg(
        prod, requester, fresh_emulator):
    """web-02 and web-03 sit behind one NSG: closing the web-02 request removes web-02's rule only, not the rule
    of another request (or of access opened in Azure) for web-03 from the same address on the same port."""
    other = ask(requester, {"web-03": [22]})
    closing = ask(requester, {"web-02": [22]})
    assert open_all(other) == ["open"] and open_all(closing) == ["open"]
    services.request_close(actor=requester, request=closing)
    assert services.request_close_apply(request_id=closing.pk).state == "closed"
    assert allow_rules(fresh_emulator, "rg-web-prod", "web-02") == []
    assert [r["sourceAddressPrefix"] for r in allow_rules(fresh_emulator, "rg-web-prod", "web-03")] == [f"{MY_IP}/32"]
    closed = AuditEvent.objects.get(action="access.closed")
    assert all("web-03" not in name for name in closed.after["removed_rules"])


def forget_in_azure(emu, request: AccessRequest) -> None:
    """Azure no longer lists its record of ``request`` (its access stays open until its end)."""
    for policy_id in {port.request_vm.vm.policy_id for port in request.ports.select_related("request_vm__vm")}:
        assert emu.forget_jit_requests(policy_id, str(request.correlation_id)) == 1


def open_for(emu, name: str) -> list[str]:
    """The sources JIT lets in to port 22 of ``name`` now: its NSGs' allow rules, its firewall's DNAT rules."""
    view = emu.nsg_rules(vm(name).arm_id)
    sources = [rule["properties"]["sourceAddressPrefix"] for nsg in view["nsgs"] for rule in nsg["securityRules"]
               if rule["name"].startswith("SecurityCenter-JITRule") and rule["properties"]["access"] == "Allow"
               and rule["properties"]["destinationAddressPrefix"] == view["privateIpAddress"]
               and rule["properties"]["destinationPortRange"] == "22"]
    nat = (view["firewall"] or {}).get("natRules") or []
    return sources + [source for rule in nat if rule.get("translatedAddress") == view["privateIpAddress"]
                      and rule.get("translatedPort") == "22" for source in rule["sourceAddresses"]]


def both_open_in_the_portal(requester, name: str) -> tuple[AccessRequest, AccessRequest]:
    """Two requests of the same source on port 22 of ``name``, the older still open in the portal (its answer
    recorded late, so the newer's open left it to the reconciler), each recorded when it opened."""
    older = ask(requester, {name: [22]})
    assert open_all(older) == ["open"]
    older.ports.update(opened_at=timezone.now() + timedelta(minutes=1))
    newer = ask(requester, {name: [22]})
    assert open_all(newer) == ["open"]
    older.ports.update(opened_at=timezone.now() - timedelta(minutes=1))
    assert (older.ports.get().state, newer.ports.get().state) == ("open", "open")
    return older, newer


@pytest.mark.parametrize("name", ["web-02", "db-01"], ids=["nsg", "firewall"])
@pytest.mark.parametrize("newer_listed", [True, False], ids=["newer-listed", "newer-not-listed-either"])
def test_close_now_of_a_request_azure_no_longer_lists_leaves_the_newer_requests_access_for_the_same_source(
        prod, requester, client, fresh_emulator, name, newer_listed):
    """Azure keeps one request per VM port, and the newer one's rule has the same source: without Azure's record of
    the older, removing the rule of its port and source (or, behind a firewall, a replacement request) would end the
    newer one's access. The older is closed with the reason on its page; the newer's access stays open."""
    import html

    from django.urls import reverse

    older, newer = both_open_in_the_portal(requester, name)
    forget_in_azure(fresh_emulator, older)
    if not newer_listed:  # then the portal's own order says which is newer
        forget_in_azure(fresh_emulator, newer)
    sent = len(initiates(fresh_emulator))
    services.request_close(actor=requester, request=older)
    assert services.request_close_apply(request_id=older.pk).state == "closed"
    assert open_for(fresh_emulator, name) == [f"{MY_IP}/32"]
    assert len(initiates(fresh_emulator)) == sent  # no replacement request behind the firewall either
    port = older.ports.get()
    reason = f"The access remains open under request #{newer.pk}"
    assert port.state == "closed" and port.last_error.startswith(reason)
    assert AccessRequest.objects.get(pk=older.pk).state == "closed"
    assert (newer.ports.get().state, AccessRequest.objects.get(pk=newer.pk).state) == ("open", "open")
    closed = AuditEvent.objects.get(action="access.closed", correlation_id=str(older.correlation_id))
    assert (closed.after["removed_rules"], closed.after["left_open_for"]) == ([], {"22": newer.pk})
    client.force_login(requester)
    page = html.unescape(client.get(reverse("policies:request_detail", args=[older.pk])).content.decode())
    assert reason in page and "the portal removed the JIT allow rule" not in page


@pytest.mark.parametrize("older_listed", [True, False], ids=["older-listed", "older-not-listed-either"])
def test_close_now_of_a_request_azure_no_longer_lists_removes_its_rule_though_an_older_one_is_open_in_the_portal(
        prod, requester, fresh_emulator, older_listed):
    """The newer request is closed: the rule of its port and source is its own (Azure revoked the older, whose
    record says so, or the portal's order says it), so it is removed."""
    older, newer = both_open_in_the_portal(requester, "web-02")
    forget_in_azure(fresh_emulator, newer)
    if not older_listed:
        forget_in_azure(fresh_emulator, older)
    services.request_close(actor=requester, request=newer)
    assert services.request_close_apply(request_id=newer.pk).state == "closed"
    assert open_for(fresh_emulator, "web-02") == []
    assert newer.ports.get().last_error == ""


@pytest.mark.parametrize("name", ["web-02", "db-01"], ids=["nsg", "firewall"])
def test_close_now_of_an_older_request_azure_lists_as_replaced_leaves_the_newer_ones_access(
        prod, requester, fresh_emulator, name):
    """Azure's record found: the older's port says Revoked (NewerRequestInitiated), so nothing of the newer one's
    (same port, same source) is removed or replaced."""
    older, newer = both_open_in_the_portal(requester, name)
    sent = len(initiates(fresh_emulator))
    services.request_close(actor=requester, request=older)
    assert services.request_close_apply(request_id=older.pk).state == "closed"
    assert open_for(fresh_emulator, name) == [f"{MY_IP}/32"]
    assert len(initiates(fresh_emulator)) == sent
    port = older.ports.get()
    assert (port.state, port.azure_status, port.azure_status_reason) == ("closed", "Revoked",
                                                                         "NewerRequestInitiated")
    assert newer.ports.get().state == "open"
    # and closing the newer one then removes its rule
    services.request_close(actor=requester, request=newer)
    assert services.request_close_apply(request_id=newer.pk).state == "closed"
    assert f"{MY_IP}/32" not in open_for(fresh_emulator, name)


def test_close_now_behind_a_firewall_makes_azure_revoke_the_original(prod, requester, fresh_emulator):
    request = ask(requester, {"db-01": [22]})
    open_all(request)
    services.request_close(actor=requester, request=request)
    assert services.request_close_apply(request_id=request.pk).state == "closed"
    policy = Azure(fresh_emulator).policy("rg-data-prod", "northeurope")
    original = next(r for r in policy.requests if str(request.correlation_id) in (r.justification or "")
                    and "close" not in r.justification)
    assert original.virtual_machines[0].ports[0].status == "Revoked"
    assert original.virtual_machines[0].ports[0].status_reason == "NewerRequestInitiated"
    nat = fresh_emulator.nsg_rules(vm_id("rg-data-prod", "db-01"))["firewall"]["natRuleCollections"]
    sources = {s for c in nat for rule in c["properties"]["rules"] for s in rule["sourceAddresses"]}
    assert f"{MY_IP}/32" not in sources


def test_closing_early_behind_a_firewall_is_no_access_in_the_configured_tabs_columns(prod, requester):
    request = ask(requester, {"db-01": [22]})
    open_all(request)
    sync(prod)
    opened = vm("db-01")
    assert opened.last_user == requester.username
    services.request_close(actor=requester, request=request)
    assert services.request_close_apply(request_id=request.pk).state == "closed"
    sync(prod)  # Azure now lists the portal's replacement request from the unroutable address too
    closed = vm("db-01")
    assert (closed.approved_requests_7d, closed.last_access_at, closed.last_user) == (
        opened.approved_requests_7d, opened.last_access_at, requester.username)


@pytest.mark.parametrize(("sources", "placeholder"), [(["203.0.113.0/24", "198.51.100.0/24"], "203.0.113.0/32"),
                                                     (["2001:db8:7::/48", "203.0.113.50"], "2001:db8:7::/128")])
def test_close_now_behind_a_firewall_whose_port_allows_only_some_ranges_stays_within_them(
        prod, requester, policy_admin, fresh_emulator, sources, placeholder):
    from policies import rules
    from policies import services as policy_services

    change = policy_services.policy_save(actor=policy_admin, vm=vm("db-01"), ports=[
        rules.PortRule(22, "TCP", tuple(sources), "PT1H")])
    assert policy_services.policy_change_apply(change_id=change.pk).state == "applied"
    request = ask(requester, {"db-01": [22]}, source=f"{MY_IP}/32")
    assert open_all(request) == ["open"]
    services.request_close(actor=requester, request=request)
    assert services.request_close_apply(request_id=request.pk).state == "closed"  # not SourceAddressPrefixNotAllowed
    nat = fresh_emulator.nsg_rules(vm_id("rg-data-prod", "db-01"))["firewall"]["natRuleCollections"]
    found = {s for c in nat for rule in c["properties"]["rules"] for s in rule["sourceAddresses"]}
    assert f"{MY_IP}/32" not in found and placeholder in found


def test_close_now_behind_a_firewall_whose_port_allows_single_addresses_only_says_why_it_stays_open(
        prod, requester, policy_admin, fresh_emulator):
    from policies import rules
    from policies import services as policy_services

    change = policy_services.policy_save(actor=policy_admin, vm=vm("db-01"), ports=[
        rules.PortRule(22, "TCP", (MY_IP, "198.51.100.7"), "PT1H")])
    assert policy_services.policy_change_apply(change_id=change.pk).state == "applied"
    request = ask(requester, {"db-01": [22]}, source=f"{MY_IP}/32")
    assert open_all(request) == ["open"]
    services.request_close(actor=requester, request=request)
    assert services.request_close_apply(request_id=request.pk).state == "open"  # not the other proxy's port
    port = request.ports.get()
    assert port.state == "open" and "allows single addresses only" in port.last_error


def hub_nat_rules(emu, name: str) -> list[dict]:
    """The DNAT rules of the firewall guarding ``name`` (a spoke VM of the demo's secured virtual hub): in the
    hub firewall's Firewall Policy, as Azure Firewall Manager configures it, none in classic collections."""
    firewall = emu.nsg_rules(vm_id("rg-hub-prod", name))["firewall"]
    assert firewall["id"].endswith("/azureFirewalls/fw-hub-weu") and firewall["firewallPolicy"]
    assert firewall["natRuleCollections"] == []
    return firewall["natRules"]


def enable_spoke_vm(policy_admin, name: str) -> None:
    from policies import services as policy_services
    from tests.policies.factories import apply_all

    policy_services.policy_enable(actor=policy_admin, vms=[vm(name)])
    assert apply_all() == ["applied"]
    assert vm(name).state == "configured" and vm(name).connection_type == "firewall"


def test_a_spoke_vm_of_a_secured_hub_opens_a_dnat_rule_on_the_hub_firewall_for_the_requester_only(
        prod, requester, policy_admin, fresh_emulator):
    enable_spoke_vm(policy_admin, "spoke-01")
    request = ask(requester, {"spoke-01": [22]})
    assert open_all(request) == ["open"]
    port = AccessRequestPort.objects.select_related("request_vm").get(request=request)
    assert port.mapped_port and port.mapped_port != 22 and port.request_vm.address == "20.61.30.4"
    private_ip = vm("spoke-01").private_ip
    assert [(r["sourceAddresses"], r["destinationAddresses"], r["destinationPorts"], r["translatedAddress"],
             r["translatedPort"]) for r in hub_nat_rules(fresh_emulator, "spoke-01")] == [
        ([f"{MY_IP}/32"], ["20.61.30.4"], [str(port.mapped_port)], private_ip, "22")]
    from policies.access.selectors import port_connection

    details = port_connection(port)
    assert details.endpoint == f"20.61.30.4:{port.mapped_port}"
    assert details.ssh_line("alice") == f"ssh alice@20.61.30.4 -p {port.mapped_port}"
    fresh_emulator.advance_clock(2 * 3600)  # Azure's side: the window ends, the DNAT rule goes
    assert hub_nat_rules(fresh_emulator, "spoke-01") == []
    AccessRequestPort.objects.filter(request=request).update(end_at=timezone.now() - timedelta(minutes=1))
    assert services.reconcile(enqueue=lambda *a: None)["expired"] == 1
    assert AccessRequestPort.objects.get(request=request).state == "expired"


def test_close_now_on_a_spoke_vm_of_a_secured_hub_takes_the_requesters_ip_off_the_hub_firewall(
        prod, requester, policy_admin, fresh_emulator):
    enable_spoke_vm(policy_admin, "spoke-win-01")  # NIC NSG too: the firewall wins
    request = ask(requester, {"spoke-win-01": [3389]})
    assert open_all(request) == ["open"]
    assert [r["sourceAddresses"] for r in hub_nat_rules(fresh_emulator, "spoke-win-01")] == [[f"{MY_IP}/32"]]
    services.request_close(actor=requester, request=request)
    assert services.request_close_apply(request_id=request.pk).state == "closed"
    sources = {s for rule in hub_nat_rules(fresh_emulator, "spoke-win-01") for s in rule["sourceAddresses"]}
    assert f"{MY_IP}/32" not in sources


def test_a_spoke_vm_of_a_secured_hub_in_another_subscription_opens_like_one_of_a_hub_in_its_own(
        requester, policy_admin, fresh_emulator):
    from policies.access.selectors import port_connection
    from tests.policies.factories import CONNECTIVITY, PROD, register, remote_hubs_scenario

    fresh_emulator.load_scenario(remote_hubs_scenario())
    sync(register(fresh_emulator, PROD, "Contoso Production"))
    enable_spoke_vm(policy_admin, "neu-0")
    request = ask(requester, {"neu-0": [22]})
    assert open_all(request) == ["open"]
    port = AccessRequestPort.objects.select_related("request_vm").get(request=request)
    assert port.mapped_port and port.request_vm.address == "20.80.0.4"
    assert port_connection(port).endpoint == f"20.80.0.4:{port.mapped_port}"
    firewall = fresh_emulator.nsg_rules(vm("neu-0").arm_id)["firewall"]
    assert firewall["id"].startswith(f"/subscriptions/{CONNECTIVITY}/") and firewall["firewallPolicy"]
    assert [(r["sourceAddresses"], r["destinationPorts"], r["translatedAddress"]) for r in firewall["natRules"]] == [
        ([f"{MY_IP}/32"], [str(port.mapped_port)], vm("neu-0").private_ip)]


def test_someone_else_may_not_close_a_request_but_a_policy_admin_may(prod, requester, reader, policy_admin):
    request = ask(requester, {"web-02": [22]})
    open_all(request)
    with pytest.raises(PermissionDenied):
        services.request_close(actor=reader, request=request)
    services.request_close(actor=policy_admin, request=request)
    assert AccessRequest.objects.get(pk=request.pk).closed_by == policy_admin


def open_over_two_subscriptions(requester, emu) -> AccessRequest:
    """A request for web-02 (Production) and dev-01 (Dev/Test, with JIT in ``dev_jit_scenario``), both open, the
    requester holding its role at each subscription."""
    from accounts.models import RoleMapping
    from tests.plugins.personas import OUT_OF_SCOPE
    from tests.policies.factories import DEV, PROD, dev_jit_scenario, register_and_sync

    emu.load_scenario(dev_jit_scenario())
    register_and_sync(emu, PROD, "Contoso Production")
    register_and_sync(emu, DEV, "Contoso Dev/Test")
    RoleMapping.objects.create(source_kind=RoleMapping.SourceKind.APP_ROLE, source_value="JIT.Requester",
                               role="requester", scope=OUT_OF_SCOPE, description="JIT.Requester in Dev/Test")
    request = ask(requester, {"web-02": [22], "dev-01": [22]})
    assert open_all(request) == ["open", "open"]
    assert [r["sourceAddressPrefix"] for r in allow_rules(emu, "rg-web-prod", "web-02")] == [f"{MY_IP}/32"]
    assert [r["sourceAddressPrefix"] for r in dev_allow_rules(emu).values()] == [f"{MY_IP}/32"]
    return request


def dev_allow_rules(emu) -> dict[str, dict]:
    from tests.policies.factories import DEV

    return Azure(emu).jit_rules(vm_id("rg-dev", "dev-01", DEV), "Allow")


def test_close_now_on_vms_of_two_subscriptions_removes_each_ones_allow_rule_through_its_own_subscription(
        requester, fresh_emulator):
    """Each policy is read, and its VMs' rules removed, through the gateway of its own subscription: read through
    the other one, Dev/Test's policy was NotFound there, taken for gone, its port closed with its rule left in."""
    from policies.access.removals import POLICY_GONE

    request = open_over_two_subscriptions(requester, fresh_emulator)
    services.request_close(actor=requester, request=request)
    assert services.request_close_apply(request_id=request.pk).state == "closed"
    assert allow_rules(fresh_emulator, "rg-web-prod", "web-02") == []
    assert dev_allow_rules(fresh_emulator) == {}
    assert states(request) == {("web-02", 22): "closed", ("dev-01", 22): "closed"}
    assert not AccessRequestPort.objects.filter(request=request, azure_status_reason=POLICY_GONE).exists()
    closed = AuditEvent.objects.filter(action="access.closed").order_by("target_label")
    assert [(e.target_label, bool(e.after["removed_rules"]), "policy_gone" in e.after) for e in closed] == [
        ("dev-01", True, False), ("web-02", True, False)]


def test_the_reconciler_expires_a_request_over_two_subscriptions_reading_each_policy_through_its_own(
        requester, fresh_emulator):
    request = open_over_two_subscriptions(requester, fresh_emulator)
    fresh_emulator.advance_clock(2 * 3600)  # Azure's side: both windows end, their allow rules go
    request.ports.update(end_at=timezone.now() - timedelta(minutes=1))
    counts = services.reconcile(enqueue=lambda *a: None)
    assert (counts["expired"], counts["revoked"]) == (2, 0)
    assert states(request) == {("web-02", 22): "expired", ("dev-01", 22): "expired"}
    assert set(request.ports.values_list("azure_status", "azure_status_reason")) == {("Revoked", "Expired")}


def test_close_now_lets_a_port_past_its_end_expire_and_closes_the_one_still_open(prod, requester, fresh_emulator):
    """web-02's SSH (at most 1 hour) ended before Close now, web-04's (2 hours) had not: the close ended both as
    closed by the requester, web-02's too, though Azure had expired it and the reconciler would have marked it so."""
    lower_maximum("web-02", 22, "PT1H")
    request, _ = services.request_create(
        actor=requester, selections=[services.Selection(vm("web-02"), (22,)), services.Selection(vm("web-04"), (22,))],
        source_prefix=f"{MY_IP}/32", duration=timedelta(hours=2), justification="Patch the kernel",
        idempotency_key="partly-ended", source_kind="ip", each_port_maximum=True)
    assert open_all(request) == ["open"]
    fresh_emulator.advance_clock(3660)  # Azure's side: web-02's window ends, its allow rule goes
    request.ports.filter(request_vm__vm_name="web-02").update(end_at=timezone.now() - timedelta(minutes=1))
    services.request_close(actor=requester, request=request)
    assert services.request_close_apply(request_id=request.pk).state == "closed"
    assert states(request) == {("web-02", 22): "expired", ("web-04", 22): "closed"}
    ended = AccessRequestPort.objects.get(request=request, request_vm__vm_name="web-02")
    assert (ended.azure_status, ended.azure_status_reason) == ("Revoked", "Expired")
    assert allow_rules(fresh_emulator, "rg-web-prod", "web-04") == []
    assert [(e.action, e.target_label) for e in AuditEvent.objects.filter(
        action__in=("access.expired", "access.closed")).order_by("pk")] == [
        ("access.expired", "web-02"), ("access.closed", "web-04")]
    assert AccessRequest.objects.get(pk=request.pk).state == "closed"


def test_close_now_whose_every_port_passed_its_end_before_the_task_records_the_request_as_expired(
        prod, requester, client, fresh_emulator):
    """Close now was clicked before the end; by the time the close task ran, every port had passed its end (Azure
    expired them): nothing was ended by the close, so the request is recorded as the reconciler records an expiry,
    not as closed early by its requester."""
    from django.urls import reverse

    request = ask(requester, {"web-02": [22], "web-04": [22]})
    assert open_all(request) == ["open"]
    services.request_close(actor=requester, request=request)
    fresh_emulator.advance_clock(3660)  # Azure's side: both windows end, their allow rules go
    request.ports.update(end_at=timezone.now() - timedelta(minutes=1))
    assert services.request_close_apply(request_id=request.pk).state == "nothing-open"
    assert states(request) == {("web-02", 22): "expired", ("web-04", 22): "expired"}
    ended = AccessRequest.objects.get(pk=request.pk)
    assert (ended.state, ended.closed_at, ended.closed_by) == ("expired", None, None)
    assert not AuditEvent.objects.filter(action="access.closed").exists()
    assert sorted((e.action, e.target_label, e.actor_id) for e in AuditEvent.objects.filter(
        action="access.expired")) == [("access.expired", "web-02", None), ("access.expired", "web-04", None)]
    client.force_login(requester)
    page = client.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
    assert 'id="closed-note"' not in page and "Closed early" not in page


def test_extend_asks_again_within_the_maximum_and_links_to_the_original(prod, requester, fresh_emulator):
    original = ask(requester, {"web-02": [22]})
    open_all(original)
    with pytest.raises(ValidationError, match="at most"):
        services.request_extend(actor=requester, original=original, duration=timedelta(hours=5),
                                idempotency_key="ext-1")
    extension, created = services.request_extend(actor=requester, original=original, duration=timedelta(hours=3),
                                                 idempotency_key="ext-2")
    assert created and extension.extends == original and extension.kind == "extend"
    assert open_all(extension) == ["open"]
    assert states(original) == {("web-02", 22): "closed"}
    port = AccessRequestPort.objects.get(request=extension)
    assert port.end_at - timezone.now() > timedelta(hours=2, minutes=55)
    assert AuditEvent.objects.filter(action="access.extend_requested").count() == 1


def test_an_extension_that_would_end_before_the_open_access_is_refused(prod, requester):
    original = ask(requester, {"web-02": [22]}, hours=2)
    open_all(original)
    with pytest.raises(ValidationError, match="choose a time range that ends later"):
        services.request_extend(actor=requester, original=original, duration=timedelta(hours=1),
                                idempotency_key="ext-shorter")
    assert not AccessRequest.objects.filter(extends=original).exists()
    assert states(original) == {("web-02", 22): "open"}  # nothing replaced it with a shorter window


def test_an_extension_that_would_end_a_port_sooner_under_its_lowered_maximum_is_refused(prod, requester):
    """web-04's SSH was lowered to at most 1 hour after it opened for 2: an extension of 3 hours ends later than the
    access open now, but would have replaced web-04's with one ending an hour from now, an hour sooner."""
    original = ask(requester, {"web-02": [22], "web-04": [22]}, hours=2)
    open_all(original)
    lower_maximum("web-04", 22, "PT1H")
    with pytest.raises(ValidationError) as refused:
        services.request_extend(actor=requester, original=original, duration=timedelta(hours=3),
                                idempotency_key="ext-lowered")
    [message] = refused.value.messages
    assert message.startswith("Port 22 of web-04 is open until ") and (
        "may now be opened for at most 1 hour: this extension would end it sooner, at ") in message
    assert "web-02" not in message  # its 3 hours end later
    assert not AccessRequest.objects.filter(extends=original).exists()
    assert states(original) == {("web-02", 22): "open", ("web-04", 22): "open"}


def test_a_key_used_for_one_operation_is_refused_for_another(prod, requester):
    original = ask(requester, {"web-02": [22]}, key="once")
    open_all(original)
    with pytest.raises(services.IdempotencyConflict, match=f"a new request \\(request #{original.pk}\\)"):
        services.request_extend(actor=requester, original=original, duration=timedelta(hours=1),
                                idempotency_key="once")
    extension, _ = services.request_extend(actor=requester, original=original, duration=timedelta(hours=1),
                                           idempotency_key="ext-once")
    with pytest.raises(ValidationError, match=f"extending request #{original.pk}"):  # the pages show it
        ask(requester, {"web-02": [22]}, key="ext-once")
    again, created = services.request_extend(actor=requester, original=original, duration=timedelta(hours=1),
                                             idempotency_key="ext-once")
    assert (again, created) == (extension, False)
    assert AccessRequest.objects.count() == 2


def test_the_reconciler_marks_ports_past_their_end_expired_from_azures_state(prod, requester, fresh_emulator):
    request = ask(requester, {"web-02": [22]})
    open_all(request)
    fresh_emulator.advance_clock(2 * 3600)  # Azure's side: the window ends, the allow rule goes
    AccessRequestPort.objects.filter(request=request).update(end_at=timezone.now() - timedelta(minutes=1))
    assert services.reconcile(enqueue=lambda *a: None)["expired"] == 1
    port = AccessRequestPort.objects.get(request=request)
    assert (port.state, port.azure_status, port.azure_status_reason) == ("expired", "Revoked", "Expired")
    assert AccessRequest.objects.get(pk=request.pk).state == "expired"


def test_the_reconciler_resends_stuck_requests_and_fails_exhausted_ones(prod, requester, settings):
    stuck = ask(requester, {"web-02": [22]})
    exhausted = ask(requester, {"web-04": [22]})
    old = timezone.now() - timedelta(seconds=settings.ACCESS_STUCK_SECONDS + 5)
    AccessRequestPort.objects.filter(request=stuck).update(updated_at=old)
    AccessRequestPort.objects.filter(request=exhausted).update(state="opening", claimed_at=old,
                                                               attempts=settings.ACCESS_MAX_ATTEMPTS)
    sent = []
    counts = services.reconcile(enqueue=lambda *args: sent.append(args))
    assert counts["resent"] == 1 and sent == [(stuck.pk, vm("web-02").policy_id.lower())]
    port = AccessRequestPort.objects.get(request=exhausted)
    assert port.state == PortState.FAILED and "Gave up" in port.last_error
    assert AccessRequest.objects.get(pk=exhausted.pk).state == "failed"


def test_a_policy_answer_the_reconciler_cannot_read_stops_nothing_else_of_its_beat(prod, requester, settings,
                                                                                   monkeypatch, fresh_emulator):
    """Every read of the policy raises an exception that is not the gateway's (a bug; an answer of a shape the
    conversion did not expect is the gateway's ``Unreadable``): the beat still fails the exhausted port, with its
    last attempt's reason, resends the stuck one and expires the one past its end, instead of stopping at the first
    read, every minute."""
    ended = ask(requester, {"web-04": [22]})
    assert open_all(ended) == ["open"]
    AccessRequestPort.objects.filter(request=ended).update(end_at=timezone.now() - timedelta(minutes=1))
    exhausted = ask(requester, {"web-02": [22]})
    stuck = ask(requester, {"web-03": [22]}, source="203.0.113.0/24")
    old = timezone.now() - timedelta(seconds=settings.ACCESS_STUCK_SECONDS + 5)
    AccessRequestPort.objects.filter(request=exhausted).update(
        state="opening", claimed_at=old, attempts=settings.ACCESS_MAX_ATTEMPTS,
        last_error="Retrying: Unexpected error: KeyError: 'properties'")
    AccessRequestPort.objects.filter(request=stuck).update(updated_at=old)
    real = services.gateway_for(prod)
    monkeypatch.setattr(services.expiry, "gateway_for",
                        lambda subscription: Unexpected(real, "get_jit_policy", KeyError("properties"), times=99))
    sent = []
    counts = services.reconcile(enqueue=lambda *args: sent.append(args))
    assert (counts["failed"], counts["resent"], counts["expired"], counts["revoked"]) == (1, 1, 1, 0)
    assert sent == [(stuck.pk, vm("web-03").policy_id.lower())]
    port = AccessRequestPort.objects.get(request=exhausted)
    assert (port.state, port.last_error) == (
        "failed", f"Gave up after {settings.ACCESS_MAX_ATTEMPTS} attempts. Last error: Unexpected error: "
                  "KeyError: 'properties'")
    assert states(ended) == {("web-04", 22): "expired"}


def test_a_port_whose_last_attempt_reached_azure_opens_instead_of_failing(prod, requester, settings):
    """The last run's initiate reached Azure but its answer came after its claim went stale, so it could not
    record it: the reconciler finds the request in Azure and opens the port rather than saying it failed."""
    request = ask(requester, {"web-02": [22]})
    ports = list(AccessRequestPort.objects.filter(request=request).select_related("request_vm"))
    first = ports[0].request_vm
    services.gateway_for(vm("web-02").subscription).initiate_jit(
        first.policy_resource_group, first.policy_location, first.policy_name, services.opening._initiate_body(ports),
        justification=request.azure_justification)
    old = timezone.now() - timedelta(seconds=settings.ACCESS_STUCK_SECONDS + 5)
    AccessRequestPort.objects.filter(request=request).update(state="opening", claimed_at=old,
                                                             attempts=settings.ACCESS_MAX_ATTEMPTS)
    services.reconcile(enqueue=lambda *args: None)
    port = AccessRequestPort.objects.get(request=request)
    assert port.state == PortState.OPEN and port.azure_status == "Initiated" and port.last_error == ""
    assert AccessRequest.objects.get(pk=request.pk).state == "open"
    assert not AuditEvent.objects.filter(action="access.failed").exists()
    assert AuditEvent.objects.filter(action="access.opened").count() == 1


def test_azures_refusal_fails_the_port_visibly_with_its_reason(prod, requester, fresh_emulator):
    request = ask(requester, {"web-02": [22]})
    Azure(fresh_emulator).set_jit_security_policy("rg-web-prod", "Off")
    assert open_all(request) == ["failed"]
    port = AccessRequestPort.objects.get(request=request)
    assert "JitNetworkAccessDisabledBySecurityPolicy" in port.last_error
    assert AccessRequest.objects.get(pk=request.pk).state == "failed"


def test_extend_asks_again_only_for_the_ports_still_open(prod, requester, reader):
    original = ask(requester, {"web-02": [22], "web-04": [22]})
    open_all(original)
    original.ports.update(opened_at=timezone.now() - timedelta(minutes=1))
    open_all(ask(reader, {"web-04": [22]}, source="198.51.100.60/32"))  # Frank takes web-04's port over
    assert services.revoked_in_azure() == 0  # already closed when Frank's opened
    assert states(original) == {("web-02", 22): "open", ("web-04", 22): "closed"}
    extension, _ = services.request_extend(actor=requester, original=original, duration=timedelta(hours=1),
                                           idempotency_key="ext-open-only")
    assert states(extension) == {("web-02", 22): "queued"}  # Frank keeps web-04


# --- a JIT policy gone from Azure ---------------------------------------------------------------------------------
OPS_POLICY = r"/resourceGroups/rg-ops-prod/providers/Microsoft\.Security/locations/westeurope/jitNetworkAccessPolicies"


def _remove_jit_from_the_ops_policy(policy_admin) -> None:
    """Bob removes JIT from jump-01 and jump-02, the only VMs of rg-ops-prod's policy: the portal deletes it."""
    from policies import services as policy_services
    from tests.policies.factories import apply_all

    for name in ("jump-01", "jump-02"):
        policy_services.policy_remove(actor=policy_admin, vm=vm(name))
    assert apply_all() == ["applied", "applied"]


def test_removing_jit_from_every_vm_of_a_policy_closes_its_open_access_as_revoked(prod, requester, policy_admin,
                                                                                  fresh_emulator):
    """The policy is gone (Azure answers NotFound): every open port of it was revoked with it, and Azure removed its
    rules. The reconciler closes them at once, as any revocation, instead of leaving them open until their end."""
    from notifications.models import PendingEvent

    mine = ask(requester, {"jump-01": [3389]})
    assert open_all(mine) == ["open"]
    assert len(allow_rules(fresh_emulator, "rg-ops-prod", "jump-01")) == 1
    _remove_jit_from_the_ops_policy(policy_admin)
    azure = Azure(fresh_emulator)
    for name in ("jump-01", "jump-02"):  # Azure took JIT's rules with the policy: no allow, no deny rule left
        assert azure.jit_rules(vm_id("rg-ops-prod", name), "Allow") == {}
        assert azure.jit_ports(vm_id("rg-ops-prod", name)) == set()
    assert services.reconcile()["revoked"] == 1
    port = AccessRequestPort.objects.get(request=mine)
    assert (port.state, port.azure_status, port.azure_status_reason) == ("closed", "Revoked", "PolicyDeleted")
    mine.refresh_from_db()
    assert mine.state == "closed" and mine.closed_at is None
    assert AuditEvent.objects.filter(action="access.revoked_in_azure", target_label="jump-01").count() == 1
    told = PendingEvent.objects.get(event="closed", request_id=mine.pk)
    assert (told.detail["reason"], told.detail["azure_reason"]) == ("revoked", "PolicyDeleted")
    assert [(r["vm"], r["whole"], r["by"]) for r in told.detail["removed"]] == [
        ("jump-01", True, f"{policy_admin.display_name} (bob@contoso.example)")]
    assert services.reconcile()["revoked"] == 0


@pytest.mark.parametrize("kind", ["403", "503", "404"])
def test_a_policy_that_cannot_be_read_closes_nothing(prod, requester, policy_admin, fresh_emulator, kind):
    """A refusal or a server error says nothing about the access, nor does a 404 without ARM's code (a proxy's page,
    a wrong route): only Azure's own NotFound closes it."""
    mine = ask(requester, {"jump-01": [3389]})
    assert open_all(mine) == ["open"]
    _remove_jit_from_the_ops_policy(policy_admin)
    fresh_emulator.add_fault(OPS_POLICY, kind, method="GET", retry_after=0)
    assert services.reconcile()["revoked"] == 0
    assert services.expire_due() == (0, 0)
    assert states(mine) == {("jump-01", 3389): "open"}
    if kind == "404":  # Close now keeps the port open too, and says why
        services.request_close(actor=requester, request=mine)
        services.request_close_apply(request_id=mine.pk)
        assert states(mine) == {("jump-01", 3389): "open"}
        assert AccessRequestPort.objects.get(request=mine).last_error == "Closing failed: NotFound: NOT FOUND"
    fresh_emulator.clear_faults()
    if kind == "404":  # the close, retried, finds the policy gone
        assert services.request_close_apply(request_id=mine.pk).state == "closed"
    else:
        assert services.reconcile()["revoked"] == 1
    assert states(mine) == {("jump-01", 3389): "closed"}


def test_close_now_on_access_whose_policy_is_gone_closes_it_with_nothing_to_remove(prod, requester, policy_admin,
                                                                                   fresh_emulator):
    """Close now after the policy went: the access is already gone; the close ends "closed", not stuck in
    closing with an error."""
    mine = ask(requester, {"jump-01": [3389], "web-02": [22]})
    assert open_all(mine) == ["open", "open"]
    _remove_jit_from_the_ops_policy(policy_admin)
    services.request_close(actor=requester, request=mine)
    fresh_emulator.clear_calls()
    assert services.request_close_apply(request_id=mine.pk).state == "closed"
    assert states(mine) == {("jump-01", 3389): "closed", ("web-02", 22): "closed"}
    gone = AccessRequestPort.objects.get(request=mine, number=3389)
    assert (gone.azure_status_reason, gone.last_error) == ("PolicyDeleted", "")
    assert AccessRequestPort.objects.get(request=mine, number=22).azure_status_reason != "PolicyDeleted"
    assert allow_rules(fresh_emulator, "rg-web-prod", "web-02") == []  # the other policy's port: closed as ever
    closed = AuditEvent.objects.get(action="access.closed", target_label="jump-01")
    assert closed.after["policy_gone"] is True and closed.after["removed_rules"] == []
    assert not any("jump-01-nsg" in c["path"] for c in fresh_emulator.calls())  # nothing left to look for
    mine.refresh_from_db()
    assert mine.state == "closed"


@pytest.mark.parametrize(("removed_before_end", "state"), [(True, "closed"), (False, "expired")])
def test_access_past_its_end_whose_policy_is_gone_ends_as_the_portals_record_says(
        prod, requester, policy_admin, fresh_emulator, removed_before_end, state):
    """The end passed before the reconciler saw the policy gone: a removal the portal made before the end closed it
    (revoked, saying who); without one before the end, it expired. The reconciler counts it as what it became (a
    revoked port was counted as expired)."""
    mine = ask(requester, {"jump-01": [3389]})
    assert open_all(mine) == ["open"]
    _remove_jit_from_the_ops_policy(policy_admin)
    removed_at = AuditEvent.objects.filter(action="policy.remove_applied").earliest("occurred_at").occurred_at
    end = timezone.now() if removed_before_end else removed_at - timedelta(seconds=1)
    AccessRequestPort.objects.filter(request=mine).update(end_at=end)
    counts = services.reconcile(enqueue=lambda *a: None)
    assert (counts["expired"], counts["revoked"]) == ((0, 1) if removed_before_end else (1, 0))
    assert states(mine) == {("jump-01", 3389): state}
    port = AccessRequestPort.objects.get(request=mine)
    assert port.azure_status_reason == ("PolicyDeleted" if removed_before_end else "Expired")
