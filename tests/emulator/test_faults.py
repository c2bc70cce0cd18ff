"""Faults injected at run time: 429 with Retry-After, 5xx, slow answers and dropped connections."""
from __future__ import annotations

import time

import pytest
import requests

from emulator.scenarios.identities import PROD_SUBSCRIPTION
from emulator.testing import wait_until

VMS = f"/subscriptions/{PROD_SUBSCRIPTION}/providers/Microsoft.Compute/virtualMachines"
COMPUTE_API = "2026-04-01"


def test_a_429_fault_answers_throttled_with_retry_after(arm, fresh_emulator):
    fresh_emulator.add_fault("/Microsoft.Compute/virtualMachines$", "429", retry_after=7, count=1)
    first = arm.call("GET", VMS, api_version=COMPUTE_API)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "7"
    assert first.json()["error"]["code"] == "TooManyRequests"
    assert arm.call("GET", VMS, api_version=COMPUTE_API).status_code == 200


def test_a_429_without_retry_after_omits_the_header(arm, fresh_emulator):
    fresh_emulator.add_fault("initiate$", "429", method="POST")
    response = arm.call("POST", f"/subscriptions/{PROD_SUBSCRIPTION}/resourceGroups/rg-web-prod/providers/"
                                f"Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default/initiate",
                        json={})
    assert response.status_code == 429
    assert "Retry-After" not in response.headers


def test_a_503_fault_may_carry_retry_after(arm, fresh_emulator):
    fresh_emulator.add_fault("/Microsoft.Compute/virtualMachines$", "503", retry_after=30, count=1)
    response = arm.call("GET", VMS, api_version=COMPUTE_API)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "30")
    assert response.json()["error"]["code"] == "ServiceUnavailable"


def test_the_sdk_retries_through_a_single_500(arm, fresh_emulator):
    fresh_emulator.add_fault("/Microsoft.Compute/virtualMachines$", "500", count=1)
    since = fresh_emulator.calls()[-1]["seq"] if fresh_emulator.calls() else 0
    vms = list(arm.compute().virtual_machines.list_all())
    assert len(vms) == 38
    statuses = [c["status"] for c in fresh_emulator.calls(since) if c["path"].endswith("/virtualMachines")]
    assert statuses[:2] == [500, 200]


def test_a_503_fault_applies_only_to_the_matching_method(arm, fresh_emulator):
    fresh_emulator.add_fault("virtualMachines", "503", method="PUT")
    assert arm.call("GET", VMS, api_version=COMPUTE_API).status_code == 200
    assert arm.call("PUT", VMS + "/x", api_version=COMPUTE_API, json={}).status_code == 503


def test_a_slow_fault_delays_the_answer(arm, fresh_emulator):
    fresh_emulator.add_fault("/Microsoft.Compute/virtualMachines$", "slow", delay=1.2, count=1)
    started = time.monotonic()
    assert arm.call("GET", VMS, api_version=COMPUTE_API).status_code == 200
    assert time.monotonic() - started >= 1.2


def test_a_drop_fault_closes_the_connection_without_an_answer(arm, fresh_emulator):
    fresh_emulator.add_fault("/Microsoft.Compute/virtualMachines$", "drop", count=1)
    with pytest.raises(requests.ConnectionError):
        arm.call("GET", VMS, api_version=COMPUTE_API)
    assert arm.call("GET", VMS, api_version=COMPUTE_API).status_code == 200


def test_faults_never_touch_the_control_api_and_can_be_listed_and_cleared(fresh_emulator):
    fresh_emulator.add_fault(".*", "500")
    assert fresh_emulator.health()["status"] == "ok"
    assert [f["kind"] for f in fresh_emulator.control("GET", "faults").json()["value"]] == ["500"]
    fresh_emulator.clear_faults()
    assert fresh_emulator.control("GET", "faults").json()["value"] == []


def test_a_rate_of_zero_never_fires(arm, fresh_emulator):
    fresh_emulator.add_fault("/Microsoft.Compute/virtualMachines$", "500", rate=0)
    assert all(arm.call("GET", VMS, api_version=COMPUTE_API).status_code == 200 for _ in range(5))


def test_a_slow_answer_to_a_call_made_before_the_log_was_cleared_stays_out_of_it(arm, fresh_emulator):
    """A test that timed out on a slow call leaves it running; the next test clears the log and must not find it."""
    import threading

    fresh_emulator.add_fault("/Microsoft.Compute/virtualMachines$", "slow", delay=1.0, count=1)
    earlier = threading.Thread(target=arm.call, args=("GET", VMS), kwargs={"api_version": COMPUTE_API})
    earlier.start()
    assert wait_until(lambda: [f["hits"] for f in fresh_emulator.control("GET", "faults").json()["value"]] == [1])
    # the slow call has arrived (its fault counted it) and sleeps in the emulator
    fresh_emulator.clear_calls()
    assert arm.call("GET", f"/subscriptions/{PROD_SUBSCRIPTION}/resourceGroups",
                    api_version="2022-09-01").status_code == 200
    earlier.join()
    assert [call["path"] for call in fresh_emulator.calls()] == [f"/subscriptions/{PROD_SUBSCRIPTION}/resourceGroups"]


def test_a_garbled_fault_carries_the_request_out_and_cuts_its_json_answer_in_half(arm, fresh_emulator):
    whole = arm.call("GET", VMS, api_version=COMPUTE_API)
    fresh_emulator.add_fault("/Microsoft.Compute/virtualMachines$", "garbled", count=1)
    cut = arm.call("GET", VMS, api_version=COMPUTE_API)
    assert cut.status_code == 200 and len(cut.content) < len(whole.content)
    with pytest.raises(ValueError):
        cut.json()


def test_a_nulls_fault_carries_the_request_out_and_answers_null_for_every_object_in_a_list(arm, fresh_emulator):
    policy = (f"/subscriptions/{PROD_SUBSCRIPTION}/resourceGroups/rg-web-prod/providers/Microsoft.Security/"
              f"locations/westeurope/jitNetworkAccessPolicies/default")
    fresh_emulator.add_fault("/jitNetworkAccessPolicies/default$", "nulls", method="PUT", count=1)
    current = arm.call("GET", policy, api_version="2020-01-01").json()
    answer = arm.call("PUT", policy, api_version="2020-01-01", json={
        "kind": "Basic", "properties": {"virtualMachines": current["properties"]["virtualMachines"][:1]}})
    assert answer.status_code == 200
    assert answer.json()["properties"]["virtualMachines"] == [None]
    kept = arm.call("GET", policy, api_version="2020-01-01").json()["properties"]["virtualMachines"]
    assert [vm["id"] for vm in kept] == [current["properties"]["virtualMachines"][0]["id"]]  # the write was done
