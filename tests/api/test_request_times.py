"""A request's ``endTimeUtc`` is null until its end is known (its window starts when the last approval lands and the
port opens), and ``duration`` keeps the window's length meanwhile: the API gave the request time plus the window, an
end nobody would see, for a request still waiting for approval, an extension too."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from policies import rules
from policies.access.models import AccessRequest, AccessRequestPort
from tests.policies.access.factories import lower_maximum, open_all, rule
from tests.policies.factories import PROD, vm

pytestmark = pytest.mark.django_db
WEB = f"/subscriptions/{PROD}/resourceGroups/rg-web-prod"
MY_IP = "198.51.100.23"


def ask(client, minutes: int = 90, *, end: datetime | None = None, **extra) -> dict:
    """A request for SSH to web-02 ending ``minutes`` from now (or at ``end``)."""
    end = end or timezone.now() + timedelta(minutes=minutes)
    body = {"virtualMachines": [{"id": vm("web-02").arm_id, "ports": [
        {"number": 22, "endTimeUtc": end.isoformat(), "allowedSourceAddressPrefix": MY_IP}]}],
        "justification": "Patch (CHG-9)", **extra}
    response = client.post("/api/v1/requests/", body)
    assert response.status_code == 201, response.content
    return response.json()


def ends(body: dict) -> tuple:
    """The request's endTimeUtc and duration, and its ports', each duration in whole minutes: a window asked as an
    end time from now is a second or so shorter than the minutes asked for by the time the portal reads it."""
    def minutes(text: str) -> str:
        return f"{round(rules.parse_duration(text).total_seconds() / 60)} min"

    return (body["endTimeUtc"], minutes(body["duration"]),
            [(p["endTimeUtc"], minutes(p["duration"])) for vm_entry in body["virtualMachines"]
             for p in vm_entry["ports"]])


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_request_awaiting_approval_has_no_end_until_it_opens_and_keeps_its_window(prod, requester, approver,
                                                                                   api_as):
    rule(WEB, "manual", approvals_required=1)
    mine, theirs = api_as(requester), api_as(approver)
    created = ask(mine)
    assert created["state"] == "pending"
    assert ends(created) == (None, "90 min", [(None, "90 min")])
    assert ends(theirs.get("/api/v1/approvals/").json()["results"][0]) == ends(created)
    # The approval lands two hours later: the end the request was stored with has long gone by.
    AccessRequest.objects.filter(pk=created["id"]).update(end_at=F("end_at") - timedelta(hours=2))
    AccessRequestPort.objects.filter(request_id=created["id"]).update(end_at=F("end_at") - timedelta(hours=2))
    approved = theirs.post(f"/api/v1/requests/{created['id']}/approve/", {"comment": "ok"}).json()
    assert approved["state"] == "queued" and ends(approved) == (None, "90 min", [(None, "90 min")])
    assert ends(mine.get(created["url"]).json()) == ends(approved)

    before = timezone.now()
    assert open_all(AccessRequest.objects.get(pk=created["id"])) == ["open"]
    after = timezone.now()
    opened = mine.get(created["url"]).json()
    end, duration, [(port_end, port_duration)] = ends(opened)
    assert (opened["state"], duration, port_duration) == ("open", "90 min", "90 min")
    window = rules.parse_duration(opened["virtualMachines"][0]["ports"][0]["duration"])  # from when it opened
    assert before + window <= moment(port_end) <= after + window
    assert end == port_end


def test_a_scheduled_request_awaiting_approval_ends_its_window_after_its_start(prod, requester, api_as):
    rule(WEB, "manual", approvals_required=1)
    start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    created = ask(api_as(requester), end=start + timedelta(minutes=30), startTimeUtc=start.isoformat())
    end = (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert (created["state"], created["startTimeUtc"]) == ("pending", start.strftime("%Y-%m-%dT%H:%M:%S.000000Z"))
    assert ends(created) == (end, "30 min", [(end, "30 min")])


def test_a_request_opening_without_approval_shows_its_planned_end(prod, requester, api_as):
    before = timezone.now()
    created = ask(api_as(requester), minutes=60)
    end, duration, [(port_end, port_duration)] = ends(created)
    assert (created["state"], duration, port_duration, end) == ("queued", "60 min", "60 min", port_end)
    assert before + timedelta(minutes=59) <= moment(port_end) <= timezone.now() + timedelta(minutes=61)


def test_an_extension_awaiting_approval_has_no_end_and_a_denied_request_never_gets_one(prod, requester, approver,
                                                                                      api_as):
    mine = api_as(requester)
    created = ask(mine)
    assert open_all(AccessRequest.objects.get(pk=created["id"])) == ["open"]
    rule(WEB, "manual", approvals_required=1)
    extension = mine.post(f"/api/v1/requests/{created['id']}/extend/", {"duration": "PT2H"})
    assert extension.status_code == 201, extension.content
    assert extension.json()["state"] == "pending" and ends(extension.json()) == (None, "120 min", [(None, "120 min")])
    denied = api_as(approver).post(f"/api/v1/requests/{extension.json()['id']}/deny/", {"comment": "no"}).json()
    assert denied["state"] == "denied" and ends(denied) == (None, "120 min", [(None, "120 min")])
    assert mine.get(created["url"]).json()["endTimeUtc"] is not None  # the original's end, from Azure


def test_the_schema_says_when_the_end_is_null_and_what_duration_is(client):
    schemas = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]
    for name in ("Request", "RequestPort"):
        properties = schemas[name]["properties"]
        end = properties["endTimeUtc"]
        assert end["nullable"] is True and "null while" in end["description"].lower()
        assert properties["duration"]["type"] == "string" and "ISO 8601" in properties["duration"]["description"]
        assert "duration" in schemas[name]["required"]


def test_access_past_its_end_reads_expired_before_the_reconcile_marks_it(prod, requester, api_as):
    """Until the next reconcile (up to a minute) a request whose end passed read ``"state": "open"`` with its
    connection details; it reads as the reconcile will mark it, and nothing is written on the way."""
    mine = api_as(requester)
    created = ask(mine)
    request = AccessRequest.objects.get(pk=created["id"])
    assert open_all(request) == ["open"]
    assert mine.get(created["url"]).json()["virtualMachines"][0]["ports"][0]["connection"]
    ended = timezone.now() - timedelta(seconds=1)
    AccessRequest.objects.filter(pk=request.pk).update(end_at=ended)
    request.ports.update(end_at=ended)
    body = mine.get(created["url"]).json()
    [vm_entry] = body["virtualMachines"]
    [port] = vm_entry["ports"]
    assert (body["state"], port["status"], port["azureStatus"], port["statusReason"]) == (
        "expired", "expired", "Revoked", "Expired")
    assert "connection" not in port and "address" not in vm_entry
    assert [r["id"] for r in mine.get("/api/v1/requests/", {"state": "expired"}).json()["results"]] == [request.pk]
    assert mine.get("/api/v1/requests/", {"state": "open"}).json()["results"] == []
    assert mine.get("/api/v1/requests/").json()["results"][0]["state"] == "expired"
    request.refresh_from_db()
    assert (request.state, request.ports.get().state) == ("open", "open")  # the reconcile marks it


def test_an_extension_that_would_end_a_port_sooner_under_its_lowered_maximum_is_a_400_naming_it(prod, requester,
                                                                                               api_as):
    """web-04's SSH was lowered to at most 1 hour after it opened for 90 minutes: an extension of 2 hours ends
    web-02's later, but would have replaced web-04's with 1 hour from now, ending it sooner, and was made (201)."""
    mine = api_as(requester)
    end = (timezone.now() + timedelta(minutes=90)).isoformat()
    created = mine.post("/api/v1/requests/", {"virtualMachines": [
        {"id": vm(name).arm_id, "ports": [{"number": 22, "endTimeUtc": end, "allowedSourceAddressPrefix": MY_IP}]}
        for name in ("web-02", "web-04")], "justification": "Patch (CHG-9)"}).json()
    assert open_all(AccessRequest.objects.get(pk=created["id"])) == ["open"]
    lower_maximum("web-04", 22, "PT1H")
    refused = mine.post(f"/api/v1/requests/{created['id']}/extend/", {"duration": "PT2H"})
    assert refused.status_code == 400, refused.content
    [error] = refused.json()["errors"]
    assert error.startswith("Port 22 of web-04 is open until ") and "may now be opened for at most 1 hour" in error
    assert not AccessRequest.objects.filter(extends_id=created["id"]).exists()
