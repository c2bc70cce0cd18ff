"""Azure's failures reach the portal as ``cloud.errors`` exceptions that keep Azure's code, message and ids."""
from __future__ import annotations

import socket
import time
from datetime import timedelta

import pytest

from cloud import types
from cloud.azure import AzureGateway
from cloud.config import CloudEndpoint, CredentialSpec
from cloud.errors import Forbidden, Invalid, NotFound, Throttled, Transient
from tests.cloud.conftest import (
    PORTAL_CLIENT_ID,
    PORTAL_SECRET,
    PROD,
    arm_calls,
    emulator_now,
    fast_endpoint,
    portal_spec,
    vm_id,
)

VMS_PATH = r"/providers/Microsoft\.Compute/virtualMachines$"
INITIATE_PATH = r"/jitNetworkAccessPolicies/default/initiate$"
FABRIKAM = "5b1f2d3c-7e8a-4b9c-8d0e-1f2a3b4c5d6e"


def vm_calls(running) -> list[dict]:
    return [c for c in arm_calls(running) if c["path"].endswith("/virtualMachines")]


def test_a_missing_policy_is_not_found_with_azures_code_and_request_id(gateway):
    with pytest.raises(NotFound) as caught:
        gateway.get_jit_policy("rg-web-prod", "westeurope", "no-such-policy")

    error = caught.value
    assert (error.status, error.code, error.retryable) == (404, "ResourceNotFound", False)
    assert "no-such-policy" in error.message
    assert len(error.request_id) == 36 and error.correlation_id


def test_an_error_answer_whose_body_cannot_be_read_is_classed_by_its_status(gateway, fresh_emulator):
    """A 404 whose JSON is cut off is still not found (not ``Unreadable``): the status says what happened."""
    fresh_emulator.add_fault(r"/jitNetworkAccessPolicies/no-such-policy$", "garbled")
    with pytest.raises(NotFound) as caught:
        gateway.get_jit_policy("rg-web-prod", "westeurope", "no-such-policy")

    assert (caught.value.status, caught.value.retryable) == (404, False)


def test_a_missing_resource_group_is_not_found(gateway):
    with pytest.raises(NotFound) as caught:
        gateway.get_network_security_group("rg-nowhere", "nsg")

    assert caught.value.code == "ResourceGroupNotFound"


def test_a_bad_policy_is_invalid_with_azures_message(gateway):
    bad = types.JitPolicyVm(id=vm_id("ana-01", "rg-analytics-prod"),
                            ports=(types.JitPolicyPort(22, "ICMP", "*", (), "PT3H"),))

    with pytest.raises(Invalid) as caught:
        gateway.put_jit_policy("rg-analytics-prod", "northeurope", "default", [bad])

    error = caught.value
    assert (error.status, error.code, error.retryable) == (400, "InvalidProtocol", False)
    assert "protocol must be TCP, UDP or *" in error.message
    assert str(error).startswith("InvalidProtocol: ")


def test_a_bad_client_secret_is_forbidden(fresh_emulator):
    gateway = AzureGateway(PROD, portal_spec(secret="not-the-secret"), fast_endpoint(fresh_emulator))

    with pytest.raises(Forbidden) as caught:
        list(gateway.list_virtual_machines())

    assert not caught.value.retryable
    assert "sign in" in caught.value.message.lower()
    assert vm_calls(fresh_emulator) == []  # ARM was never called


def test_a_token_from_another_tenant_is_forbidden_by_resource_manager(fresh_emulator):
    spec = CredentialSpec(tenant_id=FABRIKAM, client_id=PORTAL_CLIENT_ID, client_secret=PORTAL_SECRET)
    gateway = AzureGateway(PROD, spec, fast_endpoint(fresh_emulator))

    with pytest.raises(Forbidden) as caught:
        gateway.get_pricing()

    assert (caught.value.status, caught.value.code) == (401, "InvalidAuthenticationTokenTenant")


def test_a_429_with_retry_after_is_retried_by_the_sdk_and_then_succeeds(gateway, fresh_emulator):
    fresh_emulator.add_fault(VMS_PATH, "429", count=2, retry_after=0.2)
    started = time.monotonic()

    vms = list(gateway.list_virtual_machines())

    assert len(vms) == 38
    assert [c["status"] for c in vm_calls(fresh_emulator)] == [429, 429, 200]
    assert time.monotonic() - started >= 0.4  # Retry-After was honoured


def test_a_429_storm_ends_in_throttled_with_retry_after(gateway, fresh_emulator):
    fresh_emulator.add_fault(VMS_PATH, "429", retry_after=0.1)

    with pytest.raises(Throttled) as caught:
        list(gateway.list_virtual_machines())

    error = caught.value
    assert (error.status, error.code, error.retry_after, error.retryable) == (429, "TooManyRequests", 0.1, True)
    assert len(vm_calls(fresh_emulator)) == 4  # the first try and retry_total=3 retries


def test_a_retry_after_longer_than_the_cap_is_handed_to_the_caller_at_once(fresh_emulator):
    fresh_emulator.add_fault(VMS_PATH, "429", retry_after=120)
    gateway = AzureGateway(PROD, portal_spec(), fast_endpoint(fresh_emulator, retry_after_max=5))
    started = time.monotonic()

    with pytest.raises(Throttled) as caught:
        list(gateway.list_virtual_machines())

    assert caught.value.retry_after == 120
    assert time.monotonic() - started < 5
    assert len(vm_calls(fresh_emulator)) == 1


@pytest.mark.parametrize("kind", ["500", "503"])
def test_server_errors_that_persist_are_transient(gateway, fresh_emulator, kind):
    fresh_emulator.add_fault(VMS_PATH, kind)

    with pytest.raises(Transient) as caught:
        list(gateway.list_virtual_machines())

    assert caught.value.status == int(kind) and caught.value.retryable
    assert len(vm_calls(fresh_emulator)) == 4


def test_a_503_whose_retry_after_is_past_the_cap_hands_the_wait_to_the_caller(fresh_emulator):
    fresh_emulator.add_fault(VMS_PATH, "503", retry_after=120)
    gateway = AzureGateway(PROD, portal_spec(), fast_endpoint(fresh_emulator, retry_after_max=5))

    with pytest.raises(Transient) as caught:
        list(gateway.list_virtual_machines())

    assert (caught.value.status, caught.value.retry_after, caught.value.retryable) == (503, 120, True)
    assert len(vm_calls(fresh_emulator)) == 1


def test_a_server_error_that_passes_is_retried_to_success(gateway, fresh_emulator):
    fresh_emulator.add_fault(VMS_PATH, "503", count=1)

    assert len(list(gateway.list_virtual_machines())) == 38
    assert [c["status"] for c in vm_calls(fresh_emulator)] == [503, 200]


def test_a_dropped_connection_is_transient(gateway, fresh_emulator):
    fresh_emulator.add_fault(VMS_PATH, "drop")

    with pytest.raises(Transient) as caught:
        list(gateway.list_virtual_machines())

    assert caught.value.retryable and caught.value.status is None


def test_a_slow_answer_times_out_as_transient(fresh_emulator):
    fresh_emulator.add_fault(VMS_PATH, "slow", delay=3)
    gateway = AzureGateway(PROD, portal_spec(), fast_endpoint(fresh_emulator, read_timeout=0.5, retry_total=0))
    gateway.get_pricing()  # sign in first, so only the VM list meets the slow answer

    with pytest.raises(Transient):
        list(gateway.list_virtual_machines())


def test_an_unreachable_sign_in_endpoint_is_transient():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = CloudEndpoint.for_url(f"https://127.0.0.1:{port}", retry_total=0, connection_timeout=2)
    gateway = AzureGateway(PROD, portal_spec(), endpoint)

    with pytest.raises(Transient) as caught:
        gateway.get_pricing()

    assert "Connection refused" in caught.value.message


@pytest.mark.parametrize("kind", ["500", "503"])
def test_a_sign_in_endpoint_failing_with_a_server_error_is_transient(fresh_emulator, kind):
    fresh_emulator.add_fault(r"/oauth2/v2\.0/token$", kind)
    gateway = AzureGateway(PROD, portal_spec(), fast_endpoint(fresh_emulator, retry_total=0))

    with pytest.raises(Transient) as caught:
        gateway.get_pricing()

    assert (caught.value.status, caught.value.retryable) == (int(kind), True)
    assert arm_calls(fresh_emulator) == []  # ARM was never called


def token_calls(running) -> list[dict]:
    return [c for c in running.calls() if c["path"].endswith("/oauth2/v2.0/token")]


@pytest.mark.parametrize("retry_after", [None, 7])
def test_a_sign_in_endpoint_throttling_the_portal_is_throttled_with_its_retry_after(fresh_emulator, retry_after):
    fresh_emulator.add_fault(r"/oauth2/v2\.0/token$", "429", retry_after=retry_after)
    gateway = AzureGateway(PROD, portal_spec(), fast_endpoint(fresh_emulator, retry_total=0))

    with pytest.raises(Throttled) as caught:
        gateway.get_pricing()

    error = caught.value
    assert (error.status, error.retry_after, error.retryable) == (429, retry_after, True)
    assert "throttling" in str(error)
    assert arm_calls(fresh_emulator) == []  # ARM was never called


def test_a_sign_in_endpoint_retry_after_longer_than_the_cap_is_left_to_the_task(fresh_emulator):
    fresh_emulator.add_fault(r"/oauth2/v2\.0/token$", "429", retry_after=3)
    gateway = AzureGateway(PROD, portal_spec(), fast_endpoint(fresh_emulator, retry_after_max=0.5))

    started = time.monotonic()
    with pytest.raises(Throttled) as caught:
        gateway.get_pricing()

    assert time.monotonic() - started < 2  # not waited out in the worker
    assert caught.value.retry_after == 3
    assert [c["status"] for c in token_calls(fresh_emulator)] == [429]


def test_a_short_throttle_of_the_sign_in_endpoint_is_waited_out_and_the_call_succeeds(fresh_emulator):
    fresh_emulator.add_fault(r"/oauth2/v2\.0/token$", "429", count=1, retry_after=0.2)
    gateway = AzureGateway(PROD, portal_spec(), fast_endpoint(fresh_emulator))

    assert gateway.get_pricing() is not None
    assert [c["status"] for c in token_calls(fresh_emulator)] == [429, 200]


def test_the_sign_in_endpoint_is_asked_again_once_its_throttle_is_over(fresh_emulator):
    fresh_emulator.add_fault(r"/oauth2/v2\.0/token$", "429", count=1, retry_after=0.2)
    gateway = AzureGateway(PROD, portal_spec(), fast_endpoint(fresh_emulator, retry_total=0))
    with pytest.raises(Throttled):
        gateway.get_pricing()

    time.sleep(0.2)
    assert gateway.get_pricing() is not None  # the caller's retry reaches Entra, not a remembered 429
    assert [c["status"] for c in token_calls(fresh_emulator)] == [429, 200]


def _initiate(gateway, running):
    end = emulator_now(running) + timedelta(hours=1)
    return gateway.initiate_jit("rg-web-prod", "westeurope", "default", [
        types.JitInitiateVm(id=vm_id("web-02"), ports=(types.JitInitiatePort(22, end, "203.0.113.5"),))],
        justification="retry test")


@pytest.mark.parametrize(("kind", "retry_after", "error_type"), [
    ("429", None, Throttled), ("429", 0.1, Throttled), ("503", None, Transient), ("drop", None, Transient)])
def test_initiate_is_sent_once_and_never_retried_by_the_gateway(gateway, fresh_emulator, kind, retry_after,
                                                                 error_type):
    fresh_emulator.add_fault(INITIATE_PATH, kind, method="POST", retry_after=retry_after)

    with pytest.raises(error_type) as caught:
        _initiate(gateway, fresh_emulator)

    assert caught.value.retryable
    assert len([c for c in arm_calls(fresh_emulator) if c["path"].endswith("/initiate")]) == 1
    if retry_after:
        assert caught.value.retry_after == retry_after


def test_initiate_after_a_throttle_succeeds_when_the_caller_tries_again(gateway, fresh_emulator):
    fresh_emulator.add_fault(INITIATE_PATH, "429", method="POST", count=1)
    with pytest.raises(Throttled) as caught:
        _initiate(gateway, fresh_emulator)
    assert caught.value.retry_after is None

    request = _initiate(gateway, fresh_emulator)

    assert request.vms[0].ports[0].number == 22


def test_an_unexpected_error_reads_as_its_class_and_message_on_one_short_line():
    from cloud.errors import UNEXPECTED_MAX, unexpected

    assert unexpected(KeyError("properties")) == "Unexpected error: KeyError: 'properties'"
    long = unexpected(ValueError("first line\n  second line " + "x" * 1000))
    assert long.startswith("Unexpected error: ValueError: first line second line xxx") and "\n" not in long
    assert len(long) == UNEXPECTED_MAX and long.endswith("…")


ROLE = "6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
# One call of each kind the gateway makes: an SDK list (typespec models, converted item by item), an SDK read and a
# write (msrest models), a list the gateway pages itself (raw JSON), the Activity Log's pages, a role definition.
READS = {
    "list_virtual_machines": (VMS_PATH, lambda gw, em: list(gw.list_virtual_machines())),
    "get_network_security_group": (r"/networkSecurityGroups/nsg-web-frontend$",
                                   lambda gw, em: gw.get_network_security_group("rg-web-prod", "nsg-web-frontend")),
    "get_jit_policy": (r"/jitNetworkAccessPolicies/default$",
                       lambda gw, em: gw.get_jit_policy("rg-web-prod", "westeurope", "default")),
    "list_security_policies": (r"/Microsoft\.Security/policies$", lambda gw, em: list(gw.list_security_policies())),
    "iter_activity_events": (r"/eventtypes/management/values$", lambda gw, em: list(gw.iter_activity_events(
        emulator_now(em) - timedelta(days=2), emulator_now(em)))),
    "put_role_definition": (r"/roleDefinitions/", lambda gw, em: gw.put_role_definition(
        f"/subscriptions/{PROD}", ROLE, role_name="JIT test", actions=["Microsoft.Compute/virtualMachines/read"],
        assignable_scopes=[f"/subscriptions/{PROD}"])),
}


@pytest.mark.parametrize("kind", ["nulls", "garbled"])
@pytest.mark.parametrize("call", list(READS))
def test_an_answer_the_portal_cannot_read_is_unreadable_with_the_reason(gateway, fresh_emulator, call, kind):
    """Not JSON (``garbled``: DecodeError), or JSON of a shape the SDK or the conversion does not expect (``nulls``:
    an AttributeError reading a null where an object belongs): the gateway raises ``Unreadable``, a ``CloudError``
    that is not retryable and names what it met, never the ``AttributeError`` itself."""
    from cloud.errors import Unreadable

    path, read = READS[call]
    fresh_emulator.add_fault(path, kind)

    with pytest.raises(Unreadable) as caught:
        read(gateway, fresh_emulator)

    error = caught.value
    reason = "DecodeError: JSON is invalid" if kind == "garbled" else "AttributeError: 'NoneType' object has no"
    assert (error.code, error.retryable) == ("UnreadableAnswer", False)
    assert str(error).startswith(f"UnreadableAnswer: Azure's answer could not be read: {reason}")
    assert "\n" not in str(error) and len(error.message) < 300


def test_a_nsg_that_cannot_be_read_leaves_nothing_but_an_unreadable_error(gateway, fresh_emulator):
    from cloud.errors import Unreadable

    fresh_emulator.add_fault(r"/networkSecurityGroups/nsg-web-frontend$", "nulls", count=1)
    with pytest.raises(Unreadable) as caught:
        gateway.get_network_security_group("rg-web-prod", "nsg-web-frontend")
    assert isinstance(caught.value.__cause__, AttributeError)  # the original, for the log's stack
    assert gateway.get_network_security_group("rg-web-prod", "nsg-web-frontend").security_rules  # read once fixed


def test_an_unreadable_answer_to_initiate_is_not_retried_by_the_gateway(gateway, fresh_emulator):
    """Azure carried it out (the answer came after): the caller, who knows that, decides what comes next."""
    from cloud.errors import Unreadable

    fresh_emulator.add_fault(INITIATE_PATH, "nulls", method="POST")
    with pytest.raises(Unreadable):
        _initiate(gateway, fresh_emulator)
    assert len([c for c in arm_calls(fresh_emulator) if c["path"].endswith("/initiate")]) == 1


def test_a_value_the_caller_gives_that_cannot_be_sent_is_not_called_unreadable(gateway):
    """Only reading Azure's answer is wrapped: a bad value in the request is the caller's error, raised as it is."""
    with pytest.raises(ValueError):
        gateway.put_jit_policy("rg-web-prod", "westeurope", "default",
                               [{"id": vm_id("web-02"), "ports": [{"number": "twenty-two"}]}])
