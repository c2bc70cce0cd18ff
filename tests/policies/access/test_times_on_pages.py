"""Every time a page shows names its zone: a ``<time>`` whose text ends with the zone's abbreviation (the portal's
``TIME_ZONE``; UTC on the audit pages, whose searches and exports are in UTC) and whose ``datetime`` has the offset."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from api.services import token_create
from notifications.services import webhook_create, webhook_test
from policies.access import approvals
from policies.models import VirtualMachine
from tests.plugins.personas import IN_SCOPE
from tests.policies.access.factories import ask, open_all, rule

pytestmark = pytest.mark.django_db(transaction=True)

TIME = re.compile(r'<time datetime="(?P<iso>[^"]+)">'
                  r"(?P<text>\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)?) (?P<zone>[^<]+)</time>")
BARE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")  # a time as the pages wrote one before, zone unsaid


def times_of(page: str) -> tuple[list[re.Match], str]:
    """The ``<time>`` elements of ``page``, and the page without them (where no time may be left)."""
    return list(TIME.finditer(page)), TIME.sub("", page)


def check(page: str, zone: str) -> int:
    """Every time of ``page`` is a ``<time>`` in ``zone`` whose text and ``datetime`` are the same moment."""
    found, rest = times_of(page)
    assert not BARE.findall(rest), BARE.findall(rest)
    for match in found:
        assert match["zone"] == zone, match.group(0)
        moment = datetime.fromisoformat(match["iso"])
        assert moment.tzinfo is not None and match["text"] == moment.strftime(
            "%Y-%m-%d %H:%M:%S" if match["text"].count(":") == 2 else "%Y-%m-%d %H:%M"), match.group(0)
    return len(found)


def test_the_portals_pages_name_the_zone_of_every_time_they_show(
        client, prod, requester, approver, policy_admin, auditor, settings):
    settings.TIME_ZONE = "Europe/Amsterdam"  # CET in winter, CEST in summer: the zone of the moment shown
    opened = ask(requester, {"web-02": [22]})
    open_all(opened)
    rule(f"{IN_SCOPE}/resourceGroups/rg-data-prod", "manual")
    waiting = ask(requester, {"db-01": [22]})
    VirtualMachine.objects.filter(name="web-02").update(last_access_at=timezone.now() - timedelta(days=200))
    hook, _ = webhook_create(actor=None, name="hook", url="https://hooks.example.com/jit", format="json",
                             scope=IN_SCOPE, events=["opened"])
    webhook_test(actor=None, webhook=hook)
    token_create(actor=requester, name="laptop", expires_at=timezone.now() + timedelta(days=30))
    web02 = VirtualMachine.objects.get(name="web-02")

    def local(path: str, user, minimum: int = 1, **query) -> None:
        client.force_login(user)
        page = client.get(path, query).content.decode()
        found, _ = times_of(page)
        zones = {match["zone"] for match in found}
        assert zones <= {"CET", "CEST"} and len(found) >= minimum, (path, zones, len(found))
        for zone in zones or {"CET"}:  # each zone's times alone, the others' taken out
            check(TIME.sub(lambda m, z=zone: m.group(0) if m["zone"] == z else "", page), zone)

    local(reverse("policies:inventory"), policy_admin, tab="configured")
    local(reverse("policies:vm_detail", args=[web02.pk]), policy_admin, minimum=2)  # last access, synced
    local(reverse("policies:subscriptions"), policy_admin)
    local(reverse("policies:requests"), requester, minimum=3)  # requested (2), ends
    local(reverse("policies:request_detail", args=[opened.pk]), requester, minimum=2)  # asked, ends
    local(reverse("policies:request_status", args=[opened.pk]), requester)
    local(reverse("dashboard"), requester)
    local(reverse("policies:approvals"), approver)  # the approval deadline
    local(reverse("policies:request_review", args=[waiting.pk]), approver)
    local(reverse("notifications:webhook_detail", args=[hook.pk]), policy_admin)
    local(reverse("accounts:rolemapping_list"), policy_admin)
    local(reverse("api_tokens"), requester, minimum=2)  # created, expires
    local(reverse("my_access"), requester)  # signed in
    approvals.request_decide(actor=approver, request=waiting, approve=False, comment="not now")
    local(reverse("policies:request_detail", args=[waiting.pk]), requester, minimum=2)  # asked, decided

    client.force_login(auditor)  # the audit pages: UTC, as their searches and exports
    check(client.get(reverse("audit:search")).content.decode(), "UTC")
    assert check(client.get(reverse("audit:search"), {"source": "portal"}).content.decode(), "UTC")
    assert check(client.get(reverse("audit:vm_timeline"), {"request": str(opened.correlation_id)}
                            ).content.decode(), "UTC")


def test_an_access_rules_hours_name_the_portals_time_zone(client, policy_admin, settings):
    from datetime import time

    settings.TIME_ZONE = "Europe/Amsterdam"
    rule(IN_SCOPE, "auto", hours_start=time(8), hours_end=time(18), name="office hours")
    client.force_login(policy_admin)
    page = client.get(reverse("policies:rules")).content.decode()
    assert "08:00\u201318:00 (Europe/Amsterdam)" in page  # an en dash between the hours
