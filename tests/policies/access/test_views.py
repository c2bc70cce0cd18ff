"""The request pages through Django's test client (tasks' services run in this process)."""
from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from jitportal.lib.times import utc_iso, zoned_time
from policies.access.models import AccessRequest
from policies.models import VirtualMachine
from tests.plans import plans_of
from tests.plugins.personas import OUT_OF_SCOPE
from tests.policies.access.factories import ask, lower_maximum, make_access_request, open_all, states, vm
from tests.policies.azure_side import Azure
from tests.policies.factories import make_vm, sync

pytestmark = pytest.mark.django_db(transaction=True)
MY_IP = "203.0.113.77"


@pytest.fixture
def alice(client, requester):
    client.force_login(requester)
    return client


def summary_items(page: str) -> list[str]:
    """The items of the form's error summary (``id="form-errors"``, an alert box) that are not a field's (those link
    to it: ``summary_links``), unescaped; None without one."""
    found = re.search(r'<div class="errornote error-summary" id="form-errors" role="alert" tabindex="-1" '
                      r'data-error-summary>(.*?)</div>', page, re.S)
    return None if found is None else [html.unescape(i) for i in re.findall(r"<li>(?!<a )(.*?)</li>", found.group(1))]


def summary_links(page: str) -> list[tuple[str, str]]:
    """The form's error summary's links to its fields: (target, text), unescaped."""
    found = re.search(r'id="form-errors" role="alert" tabindex="-1" data-error-summary>(.*?)</div>', page, re.S)
    return [(html.unescape(href), html.unescape(text))
            for href, text in re.findall(r'<li><a href="([^"]*)">(.*?)</a></li>', found.group(1) if found else "")]


def form_page(client, *vms):
    return client.get(reverse("policies:request_new"), {"vm": [v.pk for v in vms]}, REMOTE_ADDR=MY_IP)


def token_of(response) -> str:
    return re.search(r'name="token" value="([0-9a-f]+)"', response.content.decode()).group(1)


def post_form(client, vm_row, token, **fields):
    data = {"vm": [vm_row.pk], "ports": [f"{vm_row.pk}:22"], "source_kind": "my_ip", "duration": 3600,
            "justification": "Deploy", "token": token, **fields}
    return client.post(reverse("policies:request_new"), data, REMOTE_ADDR=MY_IP)


def test_the_form_offers_the_policys_ports_my_ip_and_steps_up_to_the_maximum(prod, alice):
    page = form_page(alice, vm("web-02"))
    text = page.content.decode()
    assert page.status_code == 200 and f"My IP ({MY_IP})" in text
    assert "web-02 · 22 (SSH) · up to 3 h · from Any" in text  # a policy's * reads as the seed's "Any"
    assert 'value="10800"' in text and 'value="14400"' not in text  # PT3H maximum


def test_submitting_stores_the_request_and_shows_it_queued(prod, alice):
    web02 = vm("web-02")
    response = post_form(alice, web02, token_of(form_page(alice, web02)))
    request = AccessRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("policies:request_detail",
                                                                           args=[request.pk])
    assert request.source_prefix == f"{MY_IP}/32" and request.state == "queued"
    page = alice.get(response["Location"])
    # Just submitted: the page asks again quickly (Azure often answers within a second): every 100 ms in the first
    # second, every 250 ms after it (a loaded machine may take a second to fetch the page; the steps are tested by
    # test_the_page_polls_quickly_right_after_a_change_then_backs_off).
    assert re.search(rb'hx-trigger="every (100|250)ms"', page.content) and b"Queued" in page.content


def test_a_double_submit_makes_one_request(prod, alice):
    web02 = vm("web-02")
    token = token_of(form_page(alice, web02))
    first, second = post_form(alice, web02, token), post_form(alice, web02, token)
    assert first["Location"] == second["Location"] and AccessRequest.objects.count() == 1


@pytest.mark.parametrize(("fields", "message"), [
    ({"duration": 14400}, "Select a valid choice"),
    # Not (or no longer) in the VM's policy: named, not as the form's value ("5:3389 is not one of the choices").
    ({"ports": ["{pk}:3389"]}, "Port 3389 of web-03 is not in its JIT policy (any more): check the ports and send "
                               "the form again."),
    ({"source_kind": "ip", "source_ip": "300.1.1.1"}, "'300.1.1.1' is not a valid IP address (such as 203.0.113.7"),
    # The API's words for the same value (both read it with validation.parse_source).
    ({"source_kind": "range", "source_range": "1.2.3.999"}, "'1.2.3.999' is not a valid IP address or range"),
    ({"source_kind": "range", "source_range": "2001:db8::/16"},
     "'2001:db8::/16' is too wide: ranges must be /32 or narrower."),
    ({"source_kind": "ip", "source_ip": ""}, "Enter the IP address you connect from."),
    ({"source_kind": "range", "source_range": " "}, "Enter an IP range such as 203.0.113.0/24."),
    ({"source_kind": "any"}, "does not allow any source"),
    ({"source_kind": "range", "source_range": "10.0.0.0/8"}, "not allowed for port 22"),
])
def test_it_refuses_what_the_policy_does_not_allow(prod, alice, fields, message):
    web03 = vm("web-03")  # SSH from two proxy ranges only, for at most an hour
    fields = {k: [v.format(pk=web03.pk) for v in val] if isinstance(val, list) else val for k, val in fields.items()}
    response = post_form(alice, web03, token_of(form_page(alice, web03)), **fields)
    assert response.status_code == 400 and message in html.unescape(response.content.decode())
    assert not AccessRequest.objects.exists()


def test_a_form_shown_before_a_port_left_the_policy_names_that_port(prod, alice):
    web02 = vm("web-02")
    token = token_of(form_page(alice, web02))
    VirtualMachine.objects.filter(pk=web02.pk).update(ports=[  # a sync: 22 removed, 2222 added in Azure
        {"number": 2222, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}])
    response = post_form(alice, web02, token)
    text = html.unescape(response.content.decode())
    assert response.status_code == 400 and not AccessRequest.objects.exists()
    assert ("Port 22 of web-02 is not in its JIT policy (any more): check the ports and send the form again."
            in text) and f"{web02.pk}:22 " not in text and "web-02 · 2222" in text


def test_a_vm_out_of_scope_is_not_found(prod, alice):
    outside = make_vm(f"{OUT_OF_SCOPE}/resourceGroups/rg-dev")
    assert form_page(alice, outside).status_code == 404
    assert post_form(alice, outside, "t" * 32).status_code == 404
    assert alice.get(reverse("policies:connect", args=[outside.pk])).status_code == 404
    assert not AccessRequest.objects.exists()


def test_the_connect_page_requests_the_policys_defaults_in_one_click(prod, alice, fresh_emulator):
    jump = vm("jump-02")
    page = alice.get(reverse("policies:connect", args=[jump.pk]), REMOTE_ADDR=MY_IP)
    token = re.search(r'name="token" value="([0-9a-f]+)"', page.content.decode()).group(1)
    response = alice.post(reverse("policies:connect", args=[jump.pk]),
                          {"token": token, "justification": "Connect to jump-02"}, REMOTE_ADDR=MY_IP)
    request = AccessRequest.objects.get()
    assert response.status_code == 302
    port = request.ports.get()
    assert (port.number, port.source_prefix, port.duration_seconds) == (22, f"{MY_IP}/32", 3 * 3600)
    open_all(request)
    page = alice.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
    assert "ssh alice@51.105.20.2 -p 22" in page and "Close now" in page
    assert 'hx-trigger="every 30s"' in page  # an open request keeps its time left current


def test_a_maximum_azure_holds_that_the_portal_cannot_read_is_named_not_a_500(prod, alice, requester):
    """Azure accepts a fractional duration (PT1.5H, set in Azure itself) that the portal cannot read: the form, the
    Connect page and an open request's page still show, and asking for that port says why it cannot be requested."""
    web02 = vm("web-02")
    request = ask(requester, {"web-02": [22]})
    open_all(request)
    VirtualMachine.objects.filter(pk=web02.pk).update(ports=[
        {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1.5H"}])
    assert alice.get(reverse("policies:request_detail", args=[request.pk])).status_code == 200
    connect = alice.get(reverse("policies:connect", args=[web02.pk]), REMOTE_ADDR=MY_IP)
    assert connect.status_code == 200
    assert "port 22 for a maximum the portal cannot read (Azure holds 'PT1.5H')" in html.unescape(
        connect.content.decode())
    page = form_page(alice, web02)
    assert page.status_code == 200
    response = post_form(alice, web02, token_of(page))
    assert response.status_code == 400 and ("Port 22 of web-02 cannot be requested: Azure holds its maximum request "
                                             "time 'PT1.5H', which the portal cannot read.") in html.unescape(
        response.content.decode())
    refused = alice.post(reverse("policies:connect", args=[web02.pk]),
                         {"token": token_of(connect), "justification": "Connect"}, REMOTE_ADDR=MY_IP)
    assert refused.status_code == 400 and "which the portal cannot read" in html.unescape(refused.content.decode())
    assert AccessRequest.objects.count() == 1


def test_the_form_warns_when_someone_has_a_port_of_the_vm_open(prod, alice, reader):
    web = vm("web-02")
    assert 'id="open-now"' not in form_page(alice, web).content.decode()
    franks = ask(reader, {"web-02": [22]}, source="198.51.100.60/32")
    franks.ports.update(state="open")
    page = form_page(alice, web).content.decode()
    assert 'id="open-now"' in page and f"web-02: {reader.username} (port 22)" in page
    connect = alice.get(reverse("policies:connect", args=[web.pk]), REMOTE_ADDR=MY_IP).content.decode()
    assert 'id="open-now"' in connect and f"web-02: {reader.username} (port 22)" in connect


def test_a_request_that_is_not_open_yet_is_cancelled_not_closed(prod, alice, requester):
    request = ask(requester, {"web-02": [22]})
    request.ports.update(state="scheduled")
    AccessRequest.objects.filter(pk=request.pk).update(state="scheduled")
    page = alice.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
    assert "Cancel request" in page and "Removes the JIT allow rule" not in page
    response = alice.post(reverse("policies:request_close", args=[request.pk]), follow=True)
    assert f"Request #{request.pk} cancelled." in response.content.decode()
    page = alice.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
    assert "Cancelled before anything opened." in page and "the portal removed the JIT allow rule" not in page


def test_cancelling_a_pending_extension_says_the_original_stays_open_until_its_own_end(prod, alice, requester):
    from policies.access import services
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import rule

    original = ask(requester, {"web-02": [22]}, hours=2)
    open_all(original)
    original.refresh_from_db()
    rule(IN_SCOPE, "manual")  # the extension waits for an approver
    extension, _ = services.request_extend(actor=requester, original=original, duration=timedelta(hours=3),
                                           idempotency_key="extend-then-cancel")
    assert extension.state == "pending"
    end = timezone.localtime(original.end_at).strftime("%Y-%m-%d %H:%M UTC")
    page = alice.get(reverse("policies:request_detail", args=[extension.pk])).content.decode()
    cancel = re.search(r'Cancel request</button>\s*<span[^>]*>(.*?)</span>\s*</form>', page, re.S)
    help_text = strip_tags(cancel.group(1))
    assert "Nothing is open" not in help_text
    assert f"request #{original.pk} stays open until its own end, {end}." in help_text, help_text
    response = alice.post(reverse("policies:request_close", args=[extension.pk]), follow=True)
    text = strip_tags(response.content.decode())
    assert f"Extension #{extension.pk} cancelled; request #{original.pk} stays open until its own end, {end}." in text
    assert "Cancelled before anything opened." not in text
    assert f"the access of request #{original.pk}, which it was to extend, was left as it was." in text
    assert AccessRequest.objects.get(pk=original.pk).state == "open"


def test_a_second_extension_waits_until_the_first_one_is_decided_or_cancelled(prod, alice, requester):
    """One extension at a time waits for approvers; once it is cancelled, another may be asked for, and the
    original's page lists both."""
    from policies.access import services
    from policies.access.forms import new_token
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import rule

    original = ask(requester, {"web-02": [22]}, hours=2)
    open_all(original)
    original.refresh_from_db()
    rule(IN_SCOPE, "manual")
    first, _ = services.request_extend(actor=requester, original=original, duration=timedelta(hours=3),
                                       idempotency_key="first-extension")
    response = alice.post(reverse("policies:request_extend", args=[original.pk]),
                          {"duration": 3 * 3600, "token": new_token()}, follow=True)
    assert (f"Extension #{first.pk} of this request is still waiting for approval. Cancel it before asking for "
            "another.") in strip_tags(response.content.decode())
    assert list(original.extensions.values_list("pk", flat=True)) == [first.pk]

    alice.post(reverse("policies:request_close", args=[first.pk]))
    second, created = services.request_extend(actor=requester, original=original, duration=timedelta(hours=3),
                                               idempotency_key="second-extension")
    assert created and second.state == "pending"
    page = strip_tags(alice.get(reverse("policies:request_detail", args=[original.pk])).content.decode())
    assert f"extended by #{second.pk} (awaiting approval) · extended by #{first.pk} (closed)" in " ".join(
        page.split())


def test_a_replaced_request_says_so(prod, alice, requester, reader):
    mine = ask(requester, {"web-02": [22]})
    open_all(mine)
    mine.ports.update(opened_at=timezone.now() - timedelta(minutes=1))  # opened a while before frank asks
    open_all(ask(reader, {"web-02": [22]}, source="198.51.100.60/32"))
    from policies.access import services

    assert services.revoked_in_azure() == 0  # closed when the newer one opened
    page = alice.get(reverse("policies:request_detail", args=[mine.pk])).content.decode()
    assert "Replaced: a newer request on the same VM port took over" in page
    assert "NewerRequestInitiated" in page and "Close now" not in page
    mine.ports.update(azure_status_reason="UserRequested")  # e.g. JIT was removed from the VM
    page = alice.get(reverse("policies:request_detail", args=[mine.pk])).content.decode()
    assert "Azure revoked it before its end" in page and "Replaced:" not in page


@pytest.mark.parametrize("kind", ["my_ip", "any"])
def test_an_address_typed_beside_my_ip_or_any_is_not_silently_ignored(prod, alice, kind):
    web = vm("web-02")
    response = post_form(alice, web, token_of(form_page(alice, web)), source_kind=kind, source_ip="198.51.100.7")
    assert response.status_code == 400
    assert "You typed an address but chose" in response.content.decode()
    assert not AccessRequest.objects.exists()


@pytest.mark.parametrize(("kind", "typed", "prefix"), [
    ("ip", "::ffff:203.0.113.9", "203.0.113.9/32"),
    ("range", "::ffff:203.0.113.0/120", "203.0.113.0/24"),
])
def test_an_ipv4_address_written_as_ipv6_opens_for_the_ipv4_address(prod, alice, kind, typed, prefix):
    web = vm("web-03")  # SSH from 203.0.113.0/24 and 198.51.100.0/24 only
    response = post_form(alice, web, token_of(form_page(alice, web)), source_kind=kind, **{f"source_{kind}": typed})
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert AccessRequest.objects.get().source_prefix == prefix  # an IPv6 rule would never match IPv4 traffic


@pytest.mark.parametrize(("typed", "told"), [
    ("203.0.113.7/24", True),
    (" 203.0.113.0/24 ", False),  # a range as it is stored: nothing to say
])
def test_a_range_typed_with_host_bits_opens_its_network_and_the_request_page_says_which(prod, alice, typed, told):
    web = vm("web-03")  # SSH from 203.0.113.0/24 and 198.51.100.0/24 only
    response = post_form(alice, web, token_of(form_page(alice, web)), source_kind="range", source_range=typed)
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert AccessRequest.objects.get().source_prefix == "203.0.113.0/24"
    page = alice.get(response["Location"]).content.decode()
    note = ("203.0.113.7/24 names an address inside the range 203.0.113.0/24: the request is for that whole range "
            "(256 addresses, 203.0.113.0 to 203.0.113.255). For one address only, ask again with “A specific IP”.")
    assert (note in page) is told
    assert ("names an address inside the range" in page) is told


@pytest.mark.parametrize(("fields", "said", "not_said"), [
    ({"source_kind": "ip", "source_ip": "2001:db8::" + "1:" * 30 + "1"}, "at most 64 characters",
     "Enter the IP address you connect from."),
    ({"source_kind": "range", "source_range": "203.0.113.0/24\x00"}, "Null characters are not allowed.",
     "Enter an IP range such as"),
    ({"source_kind": "elsewhere"}, "Select a valid choice.", "Choose where you connect from."),
])
def test_a_source_the_field_refuses_gets_that_one_message(prod, alice, fields, said, not_said):
    web = vm("web-02")
    response = post_form(alice, web, token_of(form_page(alice, web)), **fields)
    page = response.content.decode()
    assert response.status_code == 400 and said in page and not_said not in page
    assert not AccessRequest.objects.exists()


def field_error(page: str, name: str) -> str:
    """The error text the field ``name`` points to (``aria-describedby``), checking it is marked invalid."""
    tag = re.search(rf'<(?:input|select|textarea)[^>]*name="{name}"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in tag, tag
    described = re.search(r'aria-describedby="([^"]+)"', tag).group(1).split()
    error = next(target for target in described if target.endswith("_error"))
    return re.search(rf'<ul class="errorlist" id="{error}">(.*?)</ul>', page, re.S).group(1)


def test_what_the_policy_or_a_rule_refuses_is_said_at_the_field_it_concerns(prod, alice):
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import rule

    rule(IN_SCOPE, "manual", justification_pattern=r"CHG-[0-9]+", justification_hint="Name the change: CHG-1234.")
    web02, web03 = vm("web-02"), vm("web-03")  # web-03: SSH from two proxy ranges only, for at most an hour
    data = {"vm": [web02.pk, web03.pk], "ports": [f"{web02.pk}:22", f"{web03.pk}:22"], "source_kind": "range",
            "source_range": "192.0.2.0/28", "duration": 10800, "justification": "Deploy",
            "token": token_of(form_page(alice, web02, web03)),
            "start_at": (timezone.localtime() + timedelta(seconds=20)).strftime("%Y-%m-%dT%H:%M:%S")}
    response = alice.post(reverse("policies:request_new"), data, REMOTE_ADDR=MY_IP)
    page = response.content.decode()
    assert response.status_code == 400 and not AccessRequest.objects.exists()
    assert "Source 192.0.2.0/28 is not allowed for port 22 of web-03" in field_error(page, "source_range")
    assert "Port 22 of web-03 may be opened for at most 1 h" in field_error(page, "duration")
    assert "more than a minute ahead" in field_error(page, "start_at")
    assert summary_items(page) == []  # the summary points at the fields: nothing left over for the top of the form
    links = summary_links(page)  # each error listed at the top too, as a link to its field
    assert [target for target, _ in links] == ["#id_source_range", "#id_duration", "#id_start_at"], links
    assert links[0][1].startswith("IP range: Source 192.0.2.0/28 is not allowed for port 22 of web-03")
    assert links[1][1].startswith("Time range: Port 22 of web-03 may be opened for at most 1 h")
    # What the portal allows now, but not what the rule asks of the justification.
    data.update(source_range="203.0.113.0/28", duration=3600, start_at="")
    page = alice.post(reverse("policies:request_new"), data, REMOTE_ADDR=MY_IP).content.decode()
    assert "Name the change: CHG-1234." in field_error(page, "justification") and summary_items(page) == []
    assert not AccessRequest.objects.exists()


def test_every_help_text_the_fields_point_to_exists(prod, alice):
    page = form_page(alice, vm("web-02")).content.decode()
    for target in re.findall(r'aria-describedby="([^"]+)"', page):
        assert f'id="{target}"' in page, target
    box = re.search(r'<textarea[^>]*name="justification"[^>]*>', page).group(0)  # what it is used for is said
    target = re.search(r'aria-describedby="([^"]+)"', box).group(1)
    assert re.search(rf'id="{target}">Sent to Azure with your user name', page)


def test_the_connect_page_says_before_the_click_when_the_policy_refuses_my_ip(prod, alice):
    jump = vm("jump-02")
    VirtualMachine.objects.filter(pk=jump.pk).update(ports=[
        {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "198.51.100.0/24",
         "maxRequestAccessDuration": "PT3H"},
        {"number": 3389, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1H"}])
    page = alice.get(reverse("policies:connect", args=[jump.pk]), REMOTE_ADDR=MY_IP).content.decode()
    warning = strip_tags(re.search(r'<div class="errornote" id="connect-source-refused">(.*?)</div>', page, re.S)
                         .group(1))
    assert "Requesting access here would be refused" in warning
    assert (f"Source {MY_IP}/32 is not allowed for port 22 of jump-02 (allowed: 198.51.100.0/24)."
            in " ".join(warning.split()))
    assert "3389" not in warning

    allowed = alice.get(reverse("policies:connect", args=[jump.pk]), REMOTE_ADDR="198.51.100.9").content.decode()
    assert 'id="connect-source-refused"' not in allowed


def test_the_connect_page_asks_each_port_for_its_own_maximum_time(prod, alice):
    jump = vm("jump-02")
    VirtualMachine.objects.filter(pk=jump.pk).update(ports=[
        {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"},
        {"number": 3389, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1H"}])
    page = alice.get(reverse("policies:connect", args=[jump.pk]), REMOTE_ADDR=MY_IP).content.decode()
    assert "port 22 for 3 hours, port 3389 for 1 hour" in page
    token = re.search(r'name="token" value="([0-9a-f]+)"', page).group(1)
    before = timezone.now()
    alice.post(reverse("policies:connect", args=[jump.pk]), {"token": token, "justification": "Connect"},
               REMOTE_ADDR=MY_IP)
    request = AccessRequest.objects.get()
    assert dict(request.ports.values_list("number", "duration_seconds")) == {22: 3 * 3600, 3389: 3600}
    assert timedelta(hours=3) <= request.end_at - before < timedelta(hours=3, minutes=1)
    port = request.ports.get(number=3389)
    assert timedelta(hours=1) <= port.end_at - before < timedelta(hours=1, minutes=1)


@pytest.mark.parametrize(("address", "advice"), [
    ("127.0.0.1", "Enter it yourself under “Choose ports, source and time range…” below."),
    ("10.1.2.3", "Check it, or enter your proxy's range under “Choose ports, source and time range…” below.")])
def test_the_connect_page_says_where_to_enter_another_address(prod, alice, address, advice):
    """The Connect page has no address box, yet its warning said "Enter it yourself." as the request form's does."""
    page = alice.get(reverse("policies:connect", args=[vm("jump-02").pk]), REMOTE_ADDR=address).content.decode()
    warning = re.search(r'<strong class="warning" id="connect-ip-warning">([^<]*)</strong>', page).group(1)
    assert html.unescape(warning).endswith(advice), warning
    assert "Choose ports, source and time range…</button>" in page
    form = alice.get(reverse("policies:request_new"), {"vm": vm("jump-02").pk}, REMOTE_ADDR=address).content.decode()
    assert "below." not in form  # the request form has the boxes: its advice stays as it was


def test_the_connect_page_says_when_jit_is_not_enabled(prod, alice, client, policy_admin):
    page = alice.get(reverse("policies:connect", args=[vm("web-05").pk])).content.decode()
    assert "not enabled" in page and "configure-jit" not in page
    client.force_login(policy_admin)
    assert "configure-jit" in client.get(reverse("policies:connect", args=[vm("web-05").pk])).content.decode()


def test_the_connect_page_of_an_unsupported_vm_says_why_rather_than_to_ask_for_jit(prod, alice, client, policy_admin):
    """A VM without NSG or firewall cannot have JIT: its Connect page told everyone, the policy admin too, to "Ask a
    JIT policy admin to enable it"."""
    build = vm("build-01")
    assert build.state == "unsupported"
    for who in (alice, client):
        if who is client:
            client.force_login(policy_admin)
        page = who.get(reverse("policies:connect", args=[build.pk])).content.decode()
        assert "Ask a JIT policy admin" not in page and "configure-jit" not in page
        assert re.search(r'id="unsupported-reason">Missing network security group \(NSG\) or Azure Firewall<', page)
        assert "Once that is fixed in Azure and the inventory synced, " in page
    assert f'you can enable JIT on it from <a href="{reverse("policies:vm_detail", args=[build.pk])}">' in page


def test_a_configured_vm_whose_subscription_lost_defender_plan_2_is_refused_before_anyone_asks_azure(
        prod, alice, fresh_emulator):
    Azure(fresh_emulator).set_servers_plan("Free")  # JIT's prerequisite, turned off in Azure after JIT was set up
    sync(prod)
    web02 = vm("web-02")
    assert web02.state == "configured" and web02.subscription.defender_missing
    connect = alice.get(reverse("policies:connect", args=[web02.pk]), REMOTE_ADDR=MY_IP).content.decode()
    assert "enable Microsoft Defender for Servers Plan 2 on subscription Contoso Production" in connect
    assert 'id="connect-form"' not in connect
    assert alice.post(reverse("policies:connect", args=[web02.pk]), {"justification": "Deploy"},
                      REMOTE_ADDR=MY_IP).status_code == 400
    refused = post_form(alice, web02, token_of(form_page(alice, web02)))
    assert refused.status_code == 400
    assert "web-02: JIT unavailable: enable Microsoft Defender for Servers Plan 2" in refused.content.decode()
    assert not AccessRequest.objects.exists()  # nothing stored, no approver asked, nothing sent to Azure


def test_my_requests_lists_mine_and_admins_see_everyone_in_scope(prod, requester, reader, policy_admin, client):
    ask(requester, {"web-02": [22]}, justification="alice's")
    ask(reader, {"web-04": [22]}, justification="frank's")
    client.force_login(requester)
    mine = client.get(reverse("policies:requests")).content.decode()
    assert "alice&#x27;s" not in mine and "web-02" in mine and "web-04" not in mine
    client.force_login(policy_admin)
    both = client.get(reverse("policies:requests")).content.decode()
    assert "web-02" in both and "web-04" in both
    filtered = client.get(reverse("policies:requests"), {"q": "web-04"}).content.decode()
    assert "web-02" not in filtered
    ask(policy_admin, {"web-03": [22]})
    only_mine = client.get(reverse("policies:requests"), {"mine": "on"}).content.decode()  # the checkbox
    assert "web-03" in only_mine and "web-02" not in only_mine and 'name="mine" id="id_mine" checked' in only_mine
    assert "web-02" in client.get(reverse("policies:requests"), {"mine": ""}).content.decode()
    # The days they were made on, where the portal is: not today's date in UTC, which midnight may have changed
    days = sorted(timezone.localdate(made) for made in AccessRequest.objects.values_list("created_at", flat=True))
    dated = client.get(reverse("policies:requests"), {"created_after": str(days[0])}).content.decode()
    assert "web-02" in dated and "web-04" in dated
    future = client.get(reverse("policies:requests"),
                        {"created_after": str(days[-1] + timedelta(days=1))}).content.decode()
    assert "web-02" not in future and "No requests match." in future
    bad = client.get(reverse("policies:requests"), {"created_after": "garbage"}).content.decode()
    assert 'id="filter-errors"' in bad and "Requested from: Enter a valid date." in bad
    for target in re.findall(r'aria-describedby="([^"]+)"', bad):
        assert f'id="{target}"' in bad, target


def test_a_search_longer_than_any_name_or_reason_is_refused_in_words_not_a_crash(client, policy_admin):
    """SQLite refuses a LIKE pattern over 50,000 bytes ("pattern too complex"): such a search was a 500."""
    make_access_request("/subscriptions/c0a1b2c3-0000-4000-8000-000000000001/resourceGroups/rg-web-prod")
    client.force_login(policy_admin)
    page = client.get(reverse("policies:requests"), {"q": "a" * 60_000})
    assert page.status_code == 200
    assert ("VM, user or reason: Ensure this value has at most 200 characters (it has 60000).</a> The filter was "
            "left out.") in page.content.decode()


def test_a_requested_to_day_before_the_requested_from_day_is_refused_not_silently_empty(prod, requester, client):
    today = timezone.localdate(ask(requester, {"web-02": [22]}).created_at)  # its day, though midnight came since
    client.force_login(requester)
    page = client.get(reverse("policies:requests"), {"created_after": str(today),
                                                      "created_before": str(today - timedelta(days=1))})
    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(r'id="id_created_before_error"><a href="#id_created_before">Requested to: Give a day on or '
                     r'after .Requested from.\.</a> The filter was left out\.', html)
    assert 'id="id_created_before"' in html and "There is a problem with the filters" in html
    assert [r.pk for r in page.context["table"].seek.rows] == [AccessRequest.objects.get().pk]
    same_day = client.get(reverse("policies:requests"), {"created_after": str(today), "created_before": str(today)})
    assert 'id="filter-errors"' not in same_day.content.decode()


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Auckland", "America/Los_Angeles"])
def test_the_requested_dates_are_whole_days_of_the_portals_time_zone(prod, requester, client, settings, zone):
    from zoneinfo import ZoneInfo

    settings.TIME_ZONE = zone
    late = ask(requester, {"web-02": [22]})
    day = (timezone.now() - timedelta(days=3)).astimezone(ZoneInfo(zone)).date()
    AccessRequest.objects.filter(pk=late.pk).update(  # 23:59:59.5 on ``day``, where the portal is
        created_at=datetime.combine(day, time(23, 59, 59, 500000), tzinfo=ZoneInfo(zone)))
    client.force_login(requester)

    def listed(**dates) -> bool:
        response = client.get(reverse("policies:requests"), {k: str(v) for k, v in dates.items()})
        assert response.status_code == 200
        return late.pk in [r.pk for r in response.context["table"].seek.rows]

    assert listed(created_after=day, created_before=day) and listed(created_before=day + timedelta(days=1))
    assert not listed(created_after=day + timedelta(days=1)) and not listed(created_before=day - timedelta(days=1))
    assert listed(created_after=date.min, created_before=date.max)  # the calendar's ends bound nothing
    assert not listed(created_before=date.min)
    with CaptureQueriesContext(connection) as queries:  # bounds on the column itself, which its index serves
        listed(created_after=day, created_before=day)
    assert any('"created_at" >= ' in q["sql"] and '"created_at" < ' in q["sql"] for q in queries.captured_queries)


def test_the_list_shows_when_a_request_was_made_and_ends_both_in_the_portals_time_zone_and_names_it(
        prod, requester, client, settings):
    from zoneinfo import ZoneInfo

    settings.TIME_ZONE = "Pacific/Auckland"
    request = ask(requester, {"web-02": [22]})
    open_all(request)
    request.refresh_from_db()
    client.force_login(requester)
    page = client.get(reverse("policies:requests")).content.decode()
    cells = re.findall(r'<td data-label="(?:Requested|Ends)" class="nowrap">(.*?)</td>', re.search(
        rf'<tr[^>]*data-request="{request.pk}".*?</tr>', page, re.S).group(0))
    local = [moment.astimezone(ZoneInfo("Pacific/Auckland")) for moment in (request.created_at, request.end_at)]
    # The end was shown in UTC, before the start; then both without their zone.
    assert cells == [f'<time datetime="{moment.isoformat(timespec="seconds")}">'
                     f'{moment.strftime("%Y-%m-%d %H:%M %Z")}</time>' for moment in local]
    assert all(cell.endswith(("NZDT</time>", "NZST</time>")) for cell in cells)


def test_the_list_escapes_the_names_a_requester_or_azure_gave(prod, requester, policy_admin, client):
    """The rows are built in Python (``AccessRequestTable.body``): each name is text, never markup."""
    request = ask(requester, {"web-02": [22]})
    AccessRequest.objects.filter(pk=request.pk).update(requester_name='<script>alert("name")</script>&co')
    request.vms.update(vm_name="<img src=x onerror=alert(1)>")
    for viewer in (requester, policy_admin):  # its requester sees every VM; an admin those in their scope
        client.force_login(viewer)
        page = client.get(reverse("policies:requests")).content.decode()
        row = re.search(rf'<tr[^>]*data-request="{request.pk}".*?</tr>', page, re.S).group(0)
        assert "<script" not in row and "<img" not in row, row
        assert '<td data-label="Requester">&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;&amp;co</td>' in row
        assert '<td data-label="VMs">&lt;img src=x onerror=alert(1)&gt;</td>' in row
        assert len(re.findall(r"<td\b", row)) == 8  # no cell broken open


def test_my_requests_without_any_says_so_and_how_to_ask(prod, requester, client):
    client.force_login(requester)
    page = client.get(reverse("policies:requests")).content.decode()
    assert "You have not requested access yet." in page and "No requests match." not in page
    assert f'href="{reverse("policies:request_new")}"' in page
    filtered = client.get(reverse("policies:requests"), {"state": "open"}).content.decode()
    assert "No requests match." in filtered and "You have not requested access yet." not in filtered


def test_the_list_page_runs_a_fixed_number_of_queries(prod, requester, client, django_assert_max_num_queries):
    for _ in range(15):
        ask(requester, {"web-02": [22]})
    client.force_login(requester)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("policies:requests")).status_code == 200


@pytest.mark.parametrize("count", [1, 8])
def test_the_list_page_of_access_past_its_end_runs_a_fixed_number_of_queries(
        persona_mappings, policy_admin, client, count, django_assert_max_num_queries):
    """Each request shown as ended (``show_as_ended``) loaded its VMs' ports on its own: a query per row until the
    reconcile marked them."""
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import make_access_request

    ended = timezone.now() - timedelta(seconds=1)
    for _ in range(count):
        request = make_access_request(f"{IN_SCOPE}/resourceGroups/rg-list")
        AccessRequest.objects.filter(pk=request.pk).update(end_at=ended)
        request.ports.update(end_at=ended, opened_at=ended - timedelta(hours=1))
    client.force_login(policy_admin)
    with django_assert_max_num_queries(12):
        page = client.get(reverse("policies:requests")).content.decode()
    assert page.count('<span class="access-state access-expired">Expired</span>') == count


def test_a_page_number_of_an_old_link_shows_the_first_page(prod, requester, client):
    """The list pages by cursor (``after``/``before``); a ``page`` number, from a link kept from before, is read as
    nothing rather than refused."""
    newest = max(ask(requester, {"web-02": [22]}).pk for _ in range(4))
    client.force_login(requester)
    response = client.get(reverse("policies:requests"), {"per_page": "3", "page": "99"})
    assert response.status_code == 200
    page = response.context["table"].seek
    assert (page.first, len(page.rows), page.rows[0].pk, page.previous) == (True, 3, newest, None) and page.next


def test_someone_else_cannot_close_a_request(prod, requester, reader, approver, client):
    """A reader and an approver at its VM may read the request; closing it is refused with the same message (an
    approver got a 404, as if it did not exist)."""
    request = ask(requester, {"web-02": [22]})
    open_all(request)
    for user in (reader, approver):
        client.force_login(user)
        assert client.get(reverse("policies:request_detail", args=[request.pk])).status_code == 200
        response = client.post(reverse("policies:request_close", args=[request.pk]), follow=True)
        assert response.redirect_chain == [(reverse("policies:request_detail", args=[request.pk]), 302)]
        assert "Only the requester or a policy admin may close this request." in response.content.decode()
        assert AccessRequest.objects.get(pk=request.pk).closed_at is None


def test_someone_else_who_may_read_a_request_is_told_only_the_requester_may_extend_it(prod, requester, reader,
                                                                                      approver, client):
    """A reader and an approver at its VM may read the request; extending it is refused with the same message (an
    approver got a 404, as if it did not exist). An approver of another scope still gets a 404."""
    request = ask(requester, {"web-02": [22]})
    open_all(request)
    url = reverse("policies:request_extend", args=[request.pk])
    for user in (reader, approver):
        client.force_login(user)
        assert client.get(reverse("policies:request_detail", args=[request.pk])).status_code == 200
        for data in ({"duration": 3600, "token": "a" * 32}, {"duration": "forever"}):  # refused before the form
            response = client.post(url, data, follow=True)
            assert response.redirect_chain == [(reverse("policies:request_detail", args=[request.pk]), 302)]
            text = response.content.decode()
            assert "Only the requester may extend their own request (Azure records them)." in text
            assert "Choose a time range." not in text
    assert not AccessRequest.objects.filter(extends=request).exists()
    outside = make_access_request(f"{OUT_OF_SCOPE}/resourceGroups/rg-web-prod")
    assert client.post(reverse("policies:request_extend", args=[outside.pk]),
                       {"duration": 3600, "token": "a" * 32}).status_code == 404


def test_the_dashboard_shows_my_open_access_and_admin_counts(prod, requester, policy_admin, client):
    request = ask(requester, {"web-02": [22]})
    open_all(request)
    client.force_login(requester)
    page = client.get(reverse("dashboard")).content.decode()
    assert 'data-port="web-02:22"' in page and "request-counts" not in page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC</time> — Open", page)  # recent requests name their zone
    client.force_login(policy_admin)
    page = client.get(reverse("dashboard")).content.decode()
    assert re.search(r'data-state="open"><th scope="row">Open</th><td><a href="/requests/\?state=open">1</a></td>',
                     page)


def test_the_dashboard_counts_portal_requests_only_and_says_access_opened_in_azure_is_not_among_them(
        prod, policy_admin, client):
    # The demo's web-01 has port 22 open for alice, opened in Azure itself (no portal request id in its
    # justification): the inventory shows it, the portal has no request of it to count.
    client.force_login(policy_admin)
    inventory = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    assert re.search(r'<small class="conn-open">Open now: alice<wbr>@contoso\.example \(22\)</small>', inventory)
    assert not AccessRequest.objects.exists()
    page = client.get(reverse("dashboard")).content.decode()
    counts = dict(re.findall(r'data-state="(\w+)"><th scope="row">[^<]+</th><td><a href="[^"]+">(\d+)</a>', page))
    assert counts and set(counts.values()) == {"0"}
    assert "<h2>Portal requests in your scope</h2>" in page
    assert "Access opened in Azure itself (the Azure portal, PowerShell, the REST API) is not counted here" in page


def test_my_open_access_is_the_portals_and_names_access_azure_listed_as_opened_for_me_outside_it(
        prod, requester, policy_admin, client):
    """The demo's web-01 has port 22 open for alice, opened in Azure itself and seen at the sync: her dashboard
    said "You have no open access right now" while the inventory showed "Open now: alice (22)" on web-01."""
    from policies.access.selectors import my_access_opened_in_azure

    client.force_login(requester)
    for url in (reverse("dashboard"), reverse("dashboard_open_access")):
        shown = client.get(url).content.decode()
        assert "You have no open access through the portal right now." in shown
        note = re.search(r'<p class="help" id="opened-in-azure">(.*?)</p>', shown, re.S)
        assert note, shown
        assert " ".join(strip_tags(note.group(1)).split()) == (
            "Azure also listed access opened for you outside the portal (in the Azure portal, PowerShell or its "
            "REST API) on 1 VM at the last sync: web-01 (the inventory's Open now).")
        assert '<a id="opened-in-azure-1" href="/inventory/?tab=configured&amp;q=web-01">web-01</a>' in note.group(1)
    with CaptureQueriesContext(connection) as queries:
        assert my_access_opened_in_azure(requester) == ["web-01"]
    # The policies whose requests name her, the VMs she may read among theirs, and her grants (claims, mappings).
    assert len(queries) <= 4
    # Nobody opened anything in Azure for Bob: nothing said.
    client.force_login(policy_admin)
    assert 'id="opened-in-azure"' not in client.get(reverse("dashboard")).content.decode()
    with CaptureQueriesContext(connection) as queries:
        assert my_access_opened_in_azure(policy_admin) == []
    # The VMs he may read accessed in the last day (and his grants), then only their policies whose requests name him.
    assert len(queries) <= 4


def test_my_access_opened_in_azure_reads_only_the_policies_of_vms_accessed_within_the_longest_window(
        prod, requester):
    """Run on every dashboard poll, it read every JIT policy's requests as text (1 to 2 s a poll on PostgreSQL at
    1,000 policies of 50 requests): a port open now was opened at most ``rules.MAX_DURATION`` ago, so only the
    policies of the VMs she may read accessed since (the sync's ``last_access_at``) are read."""
    from policies.access.selectors import my_access_opened_in_azure
    from policies.models import JitPolicy, VirtualMachine

    with CaptureQueriesContext(connection) as queries:
        assert my_access_opened_in_azure(requester) == ["web-01"]
    read = [q["sql"] for q in queries.captured_queries if '"policies_jitpolicy"' in q["sql"]]
    assert len(read) == 1 and '"policies_jitpolicy"."resource_id" IN' in read[0], read
    assert JitPolicy.objects.count() > 1
    VirtualMachine.objects.update(last_access_at=timezone.now() - timedelta(days=2))  # none accessed since
    with CaptureQueriesContext(connection) as queries:
        assert my_access_opened_in_azure(requester) == []
    assert not [q for q in queries.captured_queries if '"policies_jitpolicy"' in q["sql"]]


def test_an_empty_dashboard_tells_a_requester_where_to_ask_and_nobody_else(prod, requester, auditor, client):
    pointer = "To ask for access, find the VM on the"
    client.force_login(requester)
    page = client.get(reverse("dashboard")).content.decode()
    empty = re.search(r'<p class="empty-state" id="no-requests">No requests yet\.(.*?)</p>', page, re.S)
    assert empty and pointer in empty.group(1)
    assert '<a href="/inventory/?tab=configured">inventory\'s Configured tab</a> and choose Connect' in empty.group(1)
    client.force_login(auditor)  # may read requests, may not make one
    page = client.get(reverse("dashboard")).content.decode()
    assert '<p class="empty-state" id="no-requests">No requests yet.</p>' in page and pointer not in page


def test_the_dashboard_counts_finished_requests_of_the_last_30_days_and_links_the_list_showing_them(
        prod, requester, policy_admin, client):
    old_open, old_closed, recent_closed = (ask(requester, {"web-02": [22]}) for _ in range(3))
    open_all(old_open)
    AccessRequest.objects.filter(pk__in=[old_closed.pk, recent_closed.pk]).update(state="closed")
    AccessRequest.objects.filter(pk__in=[old_open.pk, old_closed.pk]).update(
        created_at=timezone.now() - timedelta(days=40))
    client.force_login(policy_admin)
    page = client.get(reverse("dashboard")).content.decode()
    counts = {state: (url.replace("&amp;", "&"), int(n)) for state, url, n in re.findall(
        r'data-state="(\w+)"><th scope="row">[^<]+</th><td><a href="([^"]+)">(\d+)</a>', page)}
    for state, shown in (("open", old_open), ("closed", recent_closed)):  # not the closed one of 40 days ago
        url, n = counts[state]
        listed = client.get(url).context["table"].seek.rows
        assert n == 1 and [r.pk for r in listed] == [shown.pk]


def test_the_dashboard_says_when_access_waiting_for_approval_or_opening_will_start(prod, requester, client):
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import rule

    ask(requester, {"web-02": [22]})  # queued: the worker opens it in a moment
    rule(IN_SCOPE, "manual")
    ask(requester, {"web-04": [22]}, hours=2)
    client.force_login(requester)
    page = client.get(reverse("dashboard")).content.decode()
    cells = dict(re.findall(r'<tr data-port="([^"]+)">.*?<td data-label="Time left" class="time-left">(.*?)</td>',
                            page, re.S))
    assert cells["web-04:22"].strip() == "2 hours after the last approval"
    assert cells["web-02:22"].strip() == "Opening…"


@pytest.mark.django_db
def test_the_request_page_links_its_timeline_for_those_who_may_read_the_audit(client, policy_admin, requester):
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import make_access_request

    access = make_access_request(IN_SCOPE)
    client.force_login(policy_admin)
    page = client.get(reverse("policies:request_detail", args=[access.pk])).content.decode()
    assert f'?request={access.correlation_id}' in page
    access.requester = requester
    access.save(update_fields=["requester"])
    client.force_login(requester)
    page = client.get(reverse("policies:request_detail", args=[access.pk]))
    assert page.status_code == 200
    assert 'id="request-timeline"' not in page.content.decode()


@pytest.mark.parametrize(("state", "seconds_ago", "closing", "expected"), [
    ("queued", 0.2, False, "100ms"),  # Azure often answers within a second
    ("queued", 1, False, "250ms"),
    ("opening", 12, False, "1s"),
    ("opening", 120, False, "2s"),
    ("open", 600, True, "250ms"),  # "Close now" was asked a second ago: watch it close
    ("open", 1, False, "30s"),  # open: time left, and an end or a replacement, show without reloading
    ("pending", 1, False, "5s"),
    ("scheduled", 1, False, "30s"),
])
def test_the_page_polls_quickly_right_after_a_change_then_backs_off(state, seconds_ago, closing, expected):
    from datetime import timedelta
    from types import SimpleNamespace

    from django.utils import timezone

    from policies.access.selectors import poll_interval

    now = timezone.now()
    changed = now - timedelta(seconds=seconds_ago)
    request = SimpleNamespace(state=state, created_at=now - timedelta(hours=1), updated_at=changed,
                              closed_at=now - timedelta(seconds=1) if closing else None)
    assert poll_interval(request, now) == expected


def test_access_past_its_end_shows_as_expired_before_the_reconcile_marks_it(prod, requester, policy_admin, alice,
                                                                          client):
    """Until the next reconcile (up to a minute) it showed Open with its ssh line, Close now and "0 minutes left",
    on its page, in its polled status, on the dashboard and in the Requests list; nothing is written on the way."""
    request = ask(requester, {"web-02": [22]})
    open_all(request)
    ended = timezone.now() - timedelta(seconds=1)
    AccessRequest.objects.filter(pk=request.pk).update(end_at=ended)
    request.ports.update(end_at=ended)
    page = alice.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
    status = alice.get(reverse("policies:request_status", args=[request.pk]), {"state": "open"},
                       HTTP_HX_REQUEST="true").content.decode()
    for shown in (page, status):
        assert 'id="request-state">Expired<' in shown
        assert '<td data-label="State" class="port-state">Expired</td>' in shown
        assert "ssh " not in shown and 'id="close-now"' not in shown and "left)" not in shown
        assert 'hx-trigger="every' not in shown.split('id="request-status"', 1)[1].split(">", 1)[0]
    assert 'id="request-announcement" hx-swap-oob="innerHTML">State: Expired<' in status
    for url in (reverse("dashboard"), reverse("dashboard_open_access")):
        shown = alice.get(url).content.decode()
        assert 'data-port="web-02:22"' not in shown and "no open access through the portal right now." in shown
    assert re.search(r"\d\d:\d\d UTC</time> — Expired", alice.get(reverse("dashboard")).content.decode())

    def listed(user, **query) -> dict[int, str]:
        client.force_login(user)
        page = client.get(reverse("policies:requests"), query).content.decode()
        return {int(pk): state for pk, state in re.findall(
            r'data-request="(\d+)".*?<span class="access-state access-\w+">([^<]+)</span>', page, re.S)}

    assert listed(requester) == listed(requester, state="expired") == {request.pk: "Expired"}
    assert listed(requester, state="open") == {}
    from policies.access import selectors

    assert selectors.state_counts(policy_admin)["expired"] == 1 and selectors.state_counts(policy_admin)["open"] == 0
    request.refresh_from_db()
    assert (request.state, states(request)) == ("open", {("web-02", 22): "open"})  # the reconcile marks it


def test_an_open_request_page_asks_again_when_its_access_ends(prod, requester, alice):
    """It asked every 30 s, so it went on showing the access open for up to 30 s after its end."""
    request = ask(requester, {"web-02": [22]})
    open_all(request)
    soon = timezone.now() + timedelta(seconds=10)
    AccessRequest.objects.filter(pk=request.pk).update(end_at=soon)
    request.ports.update(end_at=soon)
    for url in (reverse("policies:request_detail", args=[request.pk]), reverse("dashboard")):
        every = int(re.search(r'hx-trigger="every (\d+)ms"', alice.get(url).content.decode()).group(1))
        assert 8000 < every <= 10000


def test_the_vm_page_has_one_heading_and_azures_recent_requests_with_portal_dates(prod, alice):
    page = alice.get(reverse("policies:vm_detail", args=[vm("web-01").pk])).content.decode()
    assert page.count("<h1") == 1 and re.search(r"<h1[^>]*>web-01</h1>", page)
    recent = page[page.index('id="recent-requests"'):]
    started = re.findall(r'<td data-label="Started" class="nowrap">(.*?)</td>', recent)
    assert started and all(re.fullmatch(r'<time datetime="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>', value)
                           for value in started), started
    assert "<th>Requester</th>" in recent and "Requestor" not in page  # the word every other page uses


def test_the_status_poll_swaps_extend_in_when_the_request_opens_and_out_when_it_ends(prod, requester, alice):
    request = ask(requester, {"web-02": [22]})
    status = reverse("policies:request_status", args=[request.pk])
    queued = alice.get(status, {"extendable": "0"}).content.decode()
    assert "extend-slot" not in queued and "?extendable=0" in queued
    open_all(request)
    opened = alice.get(status, {"extendable": "0"}).content.decode()
    assert '<div id="extend-slot" hx-swap-oob="true">' in opened and 'id="extend-form"' in opened
    assert "?extendable=1" in opened
    assert "extend-slot" not in alice.get(status, {"extendable": "1"}).content.decode()  # already shown
    AccessRequest.objects.filter(pk=request.pk).update(closed_at=timezone.now())  # Close now: closing…
    closing = alice.get(status, {"extendable": "1"}).content.decode()
    assert '<div id="extend-slot" hx-swap-oob="true">' in closing and 'id="extend-form"' not in closing
    AccessRequest.objects.filter(pk=request.pk).update(state="closed")
    ended = alice.get(status, {"extendable": "1"}).content.decode()
    assert '<div id="extend-slot" hx-swap-oob="true">' in ended and 'id="extend-form"' not in ended


def test_a_state_change_seen_by_the_poll_is_written_into_the_pages_live_region_once(prod, requester, alice):
    request = ask(requester, {"web-02": [22]})
    page = alice.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
    live = re.search(r'<p id="request-announcement"[^>]*>', page).group(0)
    assert 'aria-live="polite"' in live and 'role="status"' in live
    assert page.index('id="request-announcement"') > page.index('id="request-status"')  # outside the swapped part
    status = reverse("policies:request_status", args=[request.pk])
    queued = alice.get(status, {"extendable": "0", "state": "queued"}).content.decode()
    assert "request-announcement" not in queued and "state=queued" in queued
    open_all(request)
    opened = alice.get(status, {"extendable": "0", "state": "queued"}).content.decode()
    assert '<p id="request-announcement" hx-swap-oob="innerHTML">State: Open</p>' in opened
    assert "state=open" in opened
    assert "request-announcement" not in alice.get(status, {"extendable": "1", "state": "open"}).content.decode()


def test_a_poll_after_the_session_ended_reloads_the_page_instead_of_swapping_in_the_sign_in_page(
        prod, requester, alice):
    request = ask(requester, {"web-02": [22]})
    status = reverse("policies:request_status", args=[request.pk])
    alice.logout()  # the session ended (idle, or the Entra sign-in's maximum age) while the page polls
    poll = alice.get(status, {"extendable": "0", "state": "queued"}, HTTP_HX_REQUEST="true")
    assert poll.status_code == 200 and poll["HX-Refresh"] == "true" and b"Sign in" not in poll.content
    page = alice.get(reverse("policies:request_detail", args=[request.pk]))  # the reload: to sign in, and back
    assert page.status_code == 302 and page["Location"].startswith(reverse("login"))
    assert f"next=/requests/{request.pk}/" in page["Location"]


@pytest.mark.parametrize("ids", [["99999999999999999999"], ["-3"], ["0"]])
def test_a_vm_id_the_database_cannot_hold_is_not_found(prod, alice, ids):
    alice.raise_request_exception = False
    assert alice.get(reverse("policies:request_new"), {"vm": ids}).status_code == 404
    assert alice.post(reverse("policies:request_new"), {"vm": ids, "token": "t" * 32}).status_code == 404


def test_the_request_page_names_the_time_zone_its_times_are_shown_in(prod, alice, requester, settings):
    settings.TIME_ZONE = "Asia/Kolkata"  # UTC+05:30 all year
    request = ask(requester, {"web-02": [22]})
    page = alice.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
    local = timezone.localtime(request.created_at).strftime("%Y-%m-%d %H:%M")
    ends = timezone.localtime(request.ports.get().end_at).strftime("%Y-%m-%d %H:%M")
    assert f"{local} IST" in page and f"{ends} IST" in page
    assert " UTC" not in page  # the local times were labelled UTC


def test_extend_submitted_twice_finds_the_extension_even_after_it_opened(prod, alice, requester):
    original = ask(requester, {"web-02": [22]})
    open_all(original)
    page = alice.get(reverse("policies:request_detail", args=[original.pk])).content.decode()
    token = re.search(r'id="extend-form".*?name="token" value="([0-9a-f]+)"', page, re.S).group(1)
    url = reverse("policies:request_extend", args=[original.pk])
    first = alice.post(url, {"duration": 3600, "token": token})
    extension = AccessRequest.objects.get(extends=original)
    assert first["Location"] == reverse("policies:request_detail", args=[extension.pk])
    open_all(extension)  # the original is now replaced by its extension
    page = alice.get(reverse("policies:request_detail", args=[original.pk])).content.decode()
    assert "Extended: its extension took over its open ports" in page and "Replaced:" not in page
    again = alice.post(url, {"duration": 3600, "token": token}, follow=True)  # back, and submit once more
    assert again.redirect_chain[0][0] == first["Location"]
    assert "Only an open request can be extended." not in again.content.decode()
    assert AccessRequest.objects.filter(extends=original).count() == 1


def test_extend_offers_only_time_ranges_that_end_after_the_open_access(prod, alice, requester):
    original = ask(requester, {"web-02": [22]}, hours=2)  # web-02: up to 3 hours
    open_all(original)
    page = alice.get(reverse("policies:request_detail", args=[original.pk])).content.decode()
    form = page[page.index('id="extend-form"'):]
    offered = re.findall(r'<option value="(\d+)"', form[:form.index("</select>")])
    assert offered == ["7200", "10800"]  # 15 minutes to 1 hour would end before the 2 hours open now
    # The steps go up to the longest maximum of the request's VMs; the form says a shorter one is kept.
    assert re.search(r'<select name="duration"[^>]*aria-describedby="extend-help"', form)
    assert ('id="extend-help">Each port opens again for this long, or for its own maximum time where that is '
            'shorter.</p>') in form
    token = re.search(r'name="token" value="([0-9a-f]+)"', form).group(1)
    sent = alice.post(reverse("policies:request_extend", args=[original.pk]), {"duration": 1800, "token": token},
                      follow=True)
    assert "choose a time range that ends later" in sent.content.decode()
    assert not AccessRequest.objects.filter(extends=original).exists()


def test_extend_names_a_port_it_would_end_sooner_under_its_lowered_maximum(prod, alice, requester):
    """web-04's SSH was lowered to at most 1 hour after it opened for 2: Extend offered 3 hours, which ends later
    than the access open now but would have replaced web-04's with 1 hour, and sent from the page shown before, did
    so. The page says why it offers nothing now, and the one sent from before is refused naming the port."""
    original = ask(requester, {"web-02": [22], "web-04": [22]}, hours=2)
    open_all(original)
    url = reverse("policies:request_detail", args=[original.pk])
    token = re.search(r'id="extend-form".*?name="token" value="([0-9a-f]+)"', alice.get(url).content.decode(),
                      re.S).group(1)
    lower_maximum("web-04", 22, "PT1H")
    form = html.unescape(re.search(r'<div id="extend-form" class="module">.*?</div>', alice.get(url).content.decode(),
                                   re.S).group(0))
    assert re.search(r'id="extend-help">Port 22 of web-04 is open until .+ and may now be opened for at most 1 hour: '
                     r'this extension would end it sooner, at .+\. Extend after .+, when less than that is left on '
                     r'it\.</p>', form), form
    sent = alice.post(reverse("policies:request_extend", args=[original.pk]), {"duration": 10800, "token": token},
                      follow=True)
    assert sent.redirect_chain[-1][0] == url
    assert "Port 22 of web-04 is open until " in html.unescape(sent.content.decode())
    assert not AccessRequest.objects.filter(extends=original).exists()


def test_the_status_poll_swaps_the_extend_form_in_once_a_lowered_maximum_lets_it_extend(prod, alice, requester):
    """The page says "Extend after …" in place of the time ranges (web-04's SSH lowered to 1 hour, 2 hours left on
    it): its poll says so (``?extendable=2``), and once less than the hour is left the poll swaps the form in."""
    from policies.access.models import AccessRequestPort

    original = ask(requester, {"web-02": [22], "web-04": [22]}, hours=2)
    open_all(original)
    lower_maximum("web-04", 22, "PT1H")
    page = alice.get(reverse("policies:request_detail", args=[original.pk])).content.decode()
    assert '<div id="extend-form" class="module">' in page and "?extendable=2" in page
    status = reverse("policies:request_status", args=[original.pk])
    still = alice.get(status, {"extendable": "2"}).content.decode()
    assert "extend-slot" not in still and "?extendable=2" in still
    AccessRequestPort.objects.filter(request=original).update(end_at=timezone.now() + timedelta(minutes=50))
    now = alice.get(status, {"extendable": "2"}).content.decode()
    assert '<div id="extend-slot" hx-swap-oob="true">' in now and re.search(r'<form [^>]*id="extend-form"', now)
    assert "?extendable=1" in now


def test_a_port_that_never_opened_gives_no_end_time(prod, alice, requester, approver):
    from policies.access import approvals
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import rule

    rule(IN_SCOPE, "manual")
    denied = ask(requester, {"web-02": [22]})
    approvals.request_decide(actor=approver, request=denied, approve=False, comment="Not during the freeze")
    failed = ask(requester, {"web-04": [22]})
    AccessRequest.objects.filter(pk=failed.pk).update(state="failed", approval_state="not_required")
    failed.ports.update(state="failed", last_error="Azure refused: the VM is deallocated.")
    for request in (denied, failed):
        page = alice.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
        row = re.search(r'<tr data-port="22".*?</tr>', page, re.S).group(0)
        [ends] = re.findall(r'<td data-label="Ends">(.*?)</td>', row, re.S)
        assert "Did not open" in ends and not re.search(r"\d\d:\d\d", ends), ends
    listed = alice.get(reverse("policies:requests")).content.decode()
    for request in (denied, failed):
        row = re.search(rf'<tr[^>]*data-request="{request.pk}".*?</tr>', listed, re.S).group(0)
        assert "Did not open" in row and not re.search(r"\d\d:\d\d</td>\s*<td[^>]*><span class=\"access-state",
                                                         row), row


def test_a_port_closed_early_says_when_it_closed_not_only_when_it_was_to_end(prod, alice, requester):
    from policies.access import services

    request = ask(requester, {"web-02": [22]}, hours=2)
    open_all(request)
    planned = request.ports.get().end_at
    alice.post(reverse("policies:request_close", args=[request.pk]))
    assert services.request_close_apply(request_id=request.pk).state == "closed"
    closed = request.ports.get().finished_at
    page = alice.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
    row = re.search(r'<tr data-port="22".*?</tr>', page, re.S).group(0)
    [ends] = map(strip_tags, re.findall(r'<td data-label="Ends">(.*?)</td>', row, re.S))
    stamp = "%Y-%m-%d %H:%M UTC"
    assert f"Closed {timezone.localtime(closed).strftime(stamp)}" in ends, ends
    assert f"was to end {timezone.localtime(planned).strftime(stamp)}" in ends, ends


def test_the_list_says_when_a_finished_request_ended_not_when_it_was_planned_to(prod, alice, requester):
    """The Ends column: the planned end while open; once over, when access ended (closed early, expired) or that
    nothing opened (cancelled); sorting by it still sorts by the planned end."""
    from policies.access import services

    stamp = "%Y-%m-%d %H:%M UTC"

    def when(moment) -> str:
        return timezone.localtime(moment).strftime(stamp)

    def ends_cell(request) -> str:
        page = alice.get(reverse("policies:requests"), {"sort": "end_at"}).content.decode()
        row = re.search(rf'<tr[^>]*data-request="{request.pk}".*?</tr>', page, re.S).group(0)
        [cell] = re.findall(r'<td data-label="Ends" class="nowrap">(.*?)</td>', row, re.S)
        return strip_tags(cell.replace("<br>", " "))  # the note under the time, on its own line

    closed = ask(requester, {"web-02": [22]}, hours=2)
    open_all(closed)
    closed.refresh_from_db()
    assert ends_cell(closed) == when(closed.end_at)  # open: the planned end
    alice.post(reverse("policies:request_close", args=[closed.pk]))
    assert ends_cell(closed) == f"Closing (was to end {when(closed.end_at)})"
    services.request_close_apply(request_id=closed.pk)
    finished = closed.ports.get().finished_at
    assert ends_cell(closed) == f"Closed {when(finished)} (was to end {when(closed.end_at)})"

    expired = ask(requester, {"web-04": [22]})
    open_all(expired)
    expired.refresh_from_db()
    services.request_mark_expired(port_ids=list(expired.ports.values_list("pk", flat=True)), reasons={})
    assert ends_cell(expired) == f"Expired {when(expired.end_at)}"

    cancelled = ask(requester, {"web-03": [22]})
    alice.post(reverse("policies:request_close", args=[cancelled.pk]))
    cancelled.refresh_from_db()
    assert ends_cell(cancelled) == f"Did not open (cancelled {when(cancelled.closed_at)})"

    table = alice.get(reverse("policies:requests"), {"sort": "end_at"}).context["table"]
    assert [row.pk for row in table.seek.rows] == [r.pk for r in AccessRequest.objects.order_by("end_at", "id")]


def test_a_firewall_port_without_a_mapped_port_says_so_rather_than_that_no_address_is_known(prod, alice, requester):
    request = ask(requester, {"db-01": [22]})  # behind the Azure Firewall fw-data (20.50.10.4)
    open_all(request)
    page = alice.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
    assert re.search(r"ssh alice@20\.50\.10\.4 -p \d+", page)
    request.ports.update(mapped_port=None)  # Azure's answer named no DNAT port
    page = alice.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
    assert "No address known" not in page and "ssh " not in page
    assert "Azure Firewall 20.50.10.4: Azure did not say which of its ports it mapped to port 22" in page


def test_only_the_requester_sees_how_to_connect(prod, requester, reader, policy_admin, client):
    """Another requester or reader at the VM and a policy admin may read the request, not its connection block (the
    requester's login name, the firewall's address and DNAT port): a line says it is the requester's."""
    request = ask(requester, {"db-01": [22]})  # behind the Azure Firewall fw-data (20.50.10.4)
    open_all(request)
    urls = [reverse("policies:request_detail", args=[request.pk]), reverse("policies:request_status",
                                                                           args=[request.pk])]
    for user in (reader, policy_admin):
        client.force_login(user)
        assert "By <strong>alice@contoso.example</strong>" in client.get(urls[0]).content.decode()
        for url in urls:
            text = client.get(url).content.decode()
            assert 'id="request-state">Open<' in text and "Connection details are shown to the requester only." in text
            assert "ssh " not in text and "20.50.10.4" not in text and "Copy SSH" not in text
    client.force_login(requester)
    for url in urls:
        text = client.get(url).content.decode()
        assert re.search(r"ssh alice@20\.50\.10\.4 -p \d+", text) and "shown to the requester only" not in text


def test_the_connect_page_keeps_the_justification_typed_when_it_is_refused(prod, alice):
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import rule

    rule(IN_SCOPE, "manual", justification_pattern=r"[A-Z]+-[0-9]+", justification_hint="Name the ticket.")
    jump = vm("jump-02")
    url = reverse("policies:connect", args=[jump.pk])
    token = token_of(alice.get(url, REMOTE_ADDR=MY_IP))
    response = alice.post(url, {"token": token, "justification": "Reboot after the kernel patch"},
                          REMOTE_ADDR=MY_IP)
    page = response.content.decode()
    assert response.status_code == 400 and "Name the ticket." in page
    assert 'value="Reboot after the kernel patch"' in page and not AccessRequest.objects.exists()
    box = re.search(r'<input[^>]*name="justification"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in box
    assert re.search(r'aria-describedby="([^"]*)"', box).group(1) == "form-errors connect-justification-hint"


def test_the_connect_pages_summary_links_its_justification_and_sends_other_fields_to_the_full_form(prod, alice):
    """The Connect page shows one field: an error there is a link to its box; an error at a field it does not show
    (the source its ports allow, here) says so and links to the full request form, where that field is."""
    jump = vm("jump-02")
    VirtualMachine.objects.filter(pk=jump.pk).update(ports=[{"number": 22, "protocol": "*",
                                                              "allowedSourceAddressPrefix": "10.0.0.0/8",
                                                              "maxRequestAccessDuration": "PT3H"}])
    url = reverse("policies:connect", args=[jump.pk])
    page = alice.post(url, {"token": token_of(alice.get(url, REMOTE_ADDR=MY_IP)), "justification": " "},
                      REMOTE_ADDR=MY_IP).content.decode()
    assert "There is a problem with this form</h2>" in page
    assert summary_links(page) == [("#connect-justification", "Justification: Say why you need access.")]
    assert summary_items(page) == [] and 'id="connect-justification"' in page

    response = alice.post(url, {"token": token_of(alice.get(url, REMOTE_ADDR=MY_IP)), "justification": "Deploy"},
                          REMOTE_ADDR=MY_IP)
    page = response.content.decode()
    full_form = reverse("policies:request_new")
    assert response.status_code == 400 and not AccessRequest.objects.exists()
    assert summary_links(page) == []
    assert summary_items(page) == [  # a button sending the Connect form there: what was typed goes along
        f"Allowed source IP: Source {MY_IP}/32 is not allowed for port 22 of jump-02 (allowed: 10.0.0.0/8). "
        f"“Allowed source IP” is not on this page: <button type=\"submit\" form=\"connect-form\" "
        f"formaction=\"{full_form}\" formnovalidate name=\"then\" value=\"edit\" class=\"error-summary-fix\">"
        "choose it in the full request form</button>."]
    assert "There is a problem with this form</h2>" in page


def test_the_request_form_and_the_connect_page_say_what_the_justification_needs_before_it_is_refused(prod, alice):
    """A rule's justification pattern showed only once a request was refused; its hint is now the justification's
    help on the request form and under the Connect page's box, for the VMs under that rule only."""
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import rule

    rule(f"{IN_SCOPE}/resourceGroups/rg-data-prod", "manual", justification_pattern=r"[A-Z]+-[0-9]+",
         justification_hint="Name the change or incident ticket (e.g. CHG-1234).", approvals_required=2)
    rule(f"{IN_SCOPE}/resourceGroups/rg-data-prod", "manual", name="No hint", justification_pattern=r"#\d+")
    db, web = vm("db-01"), vm("web-02")
    form = alice.get(reverse("policies:request_new") + f"?vm={db.pk}", REMOTE_ADDR=MY_IP).content.decode()
    help_text = " ".join(html.unescape(strip_tags(re.search(
        r'<div class="help" id="id_justification_helptext">(.*?)</div>', form, re.S).group(1))).split())
    assert "Name the change or incident ticket (e.g. CHG-1234)." in help_text
    assert "The justification must contain a match of #\\d+ (rule “No hint”)." in help_text
    assert help_text.endswith("Sent to Azure with your user name and the portal's request number.")
    connect = alice.get(reverse("policies:connect", args=[db.pk]), REMOTE_ADDR=MY_IP).content.decode()
    box = re.search(r'<input[^>]*name="justification"[^>]*>', connect).group(0)
    assert 'aria-describedby="connect-justification-hint"' in box
    hint = re.search(r'id="connect-justification-hint">([^<]*)<', connect).group(1)
    assert "Name the change or incident ticket (e.g. CHG-1234)." in hint and "rule “No hint”" in hint
    for page in (alice.get(reverse("policies:request_new") + f"?vm={web.pk}", REMOTE_ADDR=MY_IP),
                 alice.get(reverse("policies:connect", args=[web.pk]), REMOTE_ADDR=MY_IP)):
        assert "CHG-1234" not in page.content.decode() and "connect-justification-hint" not in page.content.decode()


def test_the_connect_page_offers_no_justification_a_rules_pattern_would_refuse(prod, alice):
    """"Connect to db-01" failed a rule asking for a ticket id, so the one click always came back refused: under
    such a rule the box starts empty, required and focused, its hint beside it; elsewhere it keeps the VM's name."""
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import rule

    rule(f"{IN_SCOPE}/resourceGroups/rg-data-prod", "manual", justification_pattern=r"[A-Z]+-[0-9]+",
         justification_hint="Name the change or incident ticket (e.g. CHG-1234).")
    rule(f"{IN_SCOPE}/resourceGroups/rg-web-prod", "manual", justification_pattern=r"(?i)connect")
    db, web = vm("db-01"), vm("web-02")
    page = alice.get(reverse("policies:connect", args=[db.pk]), REMOTE_ADDR=MY_IP).content.decode()
    box = re.search(r'<input[^>]*name="justification"[^>]*>', page).group(0)
    assert 'value=""' in box and " required" in box and " autofocus" in box, box
    assert 'aria-describedby="connect-justification-hint"' in box and "e.g. CHG-1234" in page
    page = alice.get(reverse("policies:connect", args=[web.pk]), REMOTE_ADDR=MY_IP).content.decode()
    box = re.search(r'<input[^>]*name="justification"[^>]*>', page).group(0)
    assert 'value="Connect to web-02"' in box and "autofocus" not in box, box  # it passes that rule's pattern


@pytest.mark.parametrize("opened", [True, False])
def test_close_now_submitted_twice_closes_once_without_an_error(prod, alice, requester, opened):
    from audit.models import AuditEvent

    request = ask(requester, {"web-02": [22]})
    if opened:
        open_all(request)
    url = reverse("policies:request_close", args=[request.pk])
    alice.post(url)
    closed_at = AccessRequest.objects.get(pk=request.pk).closed_at
    page = alice.post(url, follow=True).content.decode()  # a double click
    assert "This request is no longer open." not in page
    assert AccessRequest.objects.get(pk=request.pk).closed_at == closed_at
    assert AuditEvent.objects.filter(action="access.close_requested").count() == 1


def test_while_a_close_is_under_way_the_page_says_closing_and_close_now_again_sends_no_second_task(
        prod, alice, requester, monkeypatch, settings):
    """Close now stayed on the page for the few seconds the close task takes; pressing it again said "Closing
    request #N." again and sent a second close task."""
    from policies.access import services

    sent = []
    monkeypatch.setattr(services.closing, "enqueue_close", sent.append)
    request = ask(requester, {"web-02": [22]})
    open_all(request)
    url = reverse("policies:request_close", args=[request.pk])
    detail = reverse("policies:request_detail", args=[request.pk])
    first = alice.post(url, follow=True).content.decode()
    assert f"Closing request #{request.pk}." in first
    status = alice.get(reverse("policies:request_status", args=[request.pk])).content.decode()
    for shown in (first, status):
        assert 'id="close-now"' not in shown and 'id="close-form"' not in shown
        assert '<p class="help" id="closing-now"><strong>Closing…</strong> The portal is removing' in shown
    again = alice.post(url, follow=True).content.decode()  # a form shown before, or a second tab
    assert f"Request #{request.pk} is already closing: this page shows it closed once" in again
    assert f"Closing request #{request.pk}." not in again
    assert sent == [request.pk]
    # Sent longer ago than the reconcile waits before sending it again (the task lost): pressing again sends it.
    AccessRequest.objects.filter(pk=request.pk).update(
        closed_at=timezone.now() - timedelta(seconds=settings.ACCESS_STUCK_SECONDS + 1))
    alice.post(url)
    assert sent == [request.pk, request.pk]
    assert services.request_close_apply(request_id=request.pk).state == "closed"
    page = alice.get(detail).content.decode()
    assert 'id="closing-now"' not in page and 'id="close-now"' not in page


def test_a_form_sent_again_with_other_choices_says_it_was_already_sent(prod, alice):
    web02 = vm("web-02")
    token = token_of(form_page(alice, web02))
    post_form(alice, web02, token)
    # Back in the browser, the same form (same token) with another reason and time range: not a new request.
    again = post_form(alice, web02, token, justification="Another job", duration=1800)
    request = AccessRequest.objects.get()
    page = alice.get(again["Location"]).content.decode()
    assert again["Location"] == reverse("policies:request_detail", args=[request.pk])
    assert f"This form was already sent as request #{request.pk}" in page


def test_a_selected_vm_whose_jit_was_removed_meanwhile_is_named_not_a_404(prod, alice):
    web02, web04 = vm("web-02"), vm("web-04")
    VirtualMachine.objects.filter(pk=web02.pk).update(state="not_configured")  # removed since the list was shown
    response = alice.get(reverse("policies:request_new"), {"vm": [web02.pk, web04.pk]}, follow=True)
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("policies:inventory") + "?tab=configured"
    assert "You cannot request access to web-02" in page and "web-04" not in page.split("messagelist")[1][:300]


def test_a_form_sent_after_jit_left_one_of_its_vms_comes_back_for_the_others_with_what_was_typed(prod, alice):
    web02, web04 = vm("web-02"), vm("web-04")
    token = token_of(form_page(alice, web02, web04))
    VirtualMachine.objects.filter(pk=web02.pk).update(state="not_configured")  # JIT removed while the form was open
    data = {"vm": [web02.pk, web04.pk], "ports": [f"{web02.pk}:22", f"{web04.pk}:22"], "source_kind": "range",
            "source_range": "203.0.113.0/28", "duration": 3600, "justification": "Patch <both> hosts",
            "token": token}
    response = alice.post(reverse("policies:request_new"), data, REMOTE_ADDR=MY_IP)
    page = response.content.decode()
    assert response.status_code == 400 and not AccessRequest.objects.exists()
    assert "You can no longer request access to web-02" in page
    assert "Patch &lt;both&gt; hosts" in page and 'value="203.0.113.0/28"' in page  # nothing typed is lost
    assert f'name="vm" value="{web04.pk}"' in page and f'name="vm" value="{web02.pk}"' not in page
    sent = alice.post(reverse("policies:request_new"), {**data, "vm": [web04.pk], "ports": [f"{web04.pk}:22"]},
                      REMOTE_ADDR=MY_IP)
    assert sent.status_code == 302 and AccessRequest.objects.get().vms.get().vm_name == "web-04"


@pytest.mark.parametrize(("kind", "value"), [("ip", "fe80::1%eth0"), ("range", "fe80::%eth0/64")])
def test_an_ipv6_address_with_an_interface_zone_is_refused(prod, alice, kind, value):
    web = vm("web-02")  # any source allowed
    response = post_form(alice, web, token_of(form_page(alice, web)), source_kind=kind,
                         **{f"source_{kind}": value})
    assert response.status_code == 400 and "without the interface" in response.content.decode()
    assert not AccessRequest.objects.exists()


ALTERED = "This form expired or was altered; check your choices and send it again."


@pytest.mark.parametrize("token", ["", "not-a-hex-token", "api:1:" + "0" * 48])
def test_a_missing_or_altered_token_is_named_at_the_top_of_the_form(prod, alice, token):
    web02 = vm("web-02")
    response = post_form(alice, web02, token)
    assert response.status_code == 400
    assert summary_items(response.content.decode()) == [ALTERED]
    assert not AccessRequest.objects.exists()
    assert post_form(alice, web02, token_of(response)).status_code == 302  # the form shown again can be sent


@pytest.mark.parametrize("data", [{"token": ""}, {"token": "zz"}, {}])
def test_the_connect_page_names_a_missing_or_altered_token(prod, alice, data):
    url = reverse("policies:connect", args=[vm("jump-02").pk])
    response = alice.post(url, {**data, "justification": "Connect"}, REMOTE_ADDR=MY_IP)
    page = response.content.decode()
    assert response.status_code == 400 and summary_items(page) == [ALTERED]
    assert "Token:" not in page and not AccessRequest.objects.exists()


def test_extend_with_an_altered_token_says_so(prod, alice, requester):
    original = ask(requester, {"web-02": [22]})
    open_all(original)
    url = reverse("policies:request_extend", args=[original.pk])
    page = alice.post(url, {"duration": 3600, "token": "zz"}, follow=True).content.decode()
    assert ALTERED in page and "Choose a time range." not in page
    assert not AccessRequest.objects.filter(extends=original).exists()


@pytest.mark.parametrize("remote_addr", ["", "unknown"])
def test_the_connect_page_sends_to_the_full_form_when_my_ip_cannot_be_read(prod, alice, remote_addr):
    jump = vm("jump-02")
    url = reverse("policies:connect", args=[jump.pk])
    page = alice.get(url, REMOTE_ADDR=remote_addr).content.decode()
    full_form = f"{reverse('policies:request_new')}?vm={jump.pk}"
    assert 'id="connect-request"' not in page  # no one-click request for an address nobody knows
    assert re.search(rf'id="connect-no-ip">Your IP address could not be detected.*?href="{re.escape(full_form)}"',
                     page, re.S)
    refused = alice.post(url, {"token": "0" * 32, "justification": "Connect"}, REMOTE_ADDR=remote_addr)
    assert refused.status_code == 400 and 'id="connect-no-ip"' in refused.content.decode()
    form = alice.get(full_form, REMOTE_ADDR=remote_addr).content.decode()
    assert re.search(r'name="source_kind" value="ip"[^>]*checked', form)  # the full form asks for the address
    assert not AccessRequest.objects.exists()


def test_a_warning_about_my_ip_is_shown_once_on_the_request_page(prod, alice):
    web = vm("web-02")
    token = token_of(alice.get(reverse("policies:request_new"), {"vm": [web.pk]}, REMOTE_ADDR="10.1.2.3"))
    response = alice.post(reverse("policies:request_new"), {
        "vm": [web.pk], "ports": [f"{web.pk}:22"], "source_kind": "my_ip", "duration": 3600, "justification": "Deploy",
        "token": token}, REMOTE_ADDR="10.1.2.3", follow=True)
    assert response.content.decode().count("10.1.2.3 is a private or carrier-grade NAT address") == 1


def test_a_warning_about_my_ip_describes_the_source_choice_not_the_range_box(prod, alice):
    page = alice.get(reverse("policies:request_new"), {"vm": [vm("web-02").pk]},
                     REMOTE_ADDR="10.1.2.3").content.decode()
    group = re.search(r'<div class="form-row" id="row-source"[^>]*>', page).group(0)
    described = re.search(r'aria-describedby="([^"]+)"', group).group(1).split()
    assert "my-ip-warning" in described
    assert re.search(r'id="my-ip-warning"[^>]*>10.1.2.3 is a private or carrier-grade NAT address', page)
    range_help = re.search(r'id="id_source_range_helptext">(.*?)</div>', page, re.S).group(1)
    assert "10.1.2.3" not in range_help  # the range box is about a proxy's range, not the detected address


def test_a_poll_of_a_request_no_longer_visible_stops_polling_with_a_note(prod, requester, outsider, client):
    request = ask(requester, {"web-02": [22]})
    client.force_login(outsider)  # e.g. the viewer's role was removed while the page polled
    polled = client.get(reverse("policies:request_status", args=[request.pk]), HTTP_HX_REQUEST="true")
    assert polled.status_code == 286 and "You can no longer see this request" in polled.content.decode()
    assert client.get(reverse("policies:request_status", args=[request.pk])).status_code == 404  # not htmx


def test_a_bad_typed_address_marks_its_own_box_invalid_and_the_groups_are_named(prod, alice):
    web = vm("web-02")
    response = post_form(alice, web, token_of(form_page(alice, web)), source_kind="ip", source_ip="10.0.0.300")
    page = response.content.decode()
    assert response.status_code == 400 and not AccessRequest.objects.exists()
    box = re.search(r'<input[^>]*name="source_ip"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in box
    radios = re.findall(r'<input[^>]*name="source_kind"[^>]*>', page)
    assert radios and not any("aria-invalid" in radio for radio in radios)
    assert 'role="group" aria-labelledby="label-ports"' in page and 'id="label-ports"' in page
    assert 'role="group" aria-labelledby="label-source"' in page and 'id="label-source"' in page


def test_the_errors_of_the_ports_and_source_choices_describe_their_groups(prod, alice):
    web = vm("web-02")
    response = post_form(alice, web, token_of(form_page(alice, web)), ports=[], source_kind="elsewhere")
    page = response.content.decode()
    assert response.status_code == 400
    for row, field in (("row-ports", "ports"), ("row-source", "source_kind")):
        group = re.search(rf'<div class="form-row" id="{row}"[^>]*>', page).group(0)
        described = re.search(r'aria-describedby="([^"]+)"', group)
        assert described and f"id_{field}_error" in described.group(1).split(), group
        assert f'id="id_{field}_error"' in page


def test_connection_details_name_access_opened_outside_the_portal_and_the_portals_own_once(prod, alice, requester):
    from tests.policies.factories import sync

    opened = ask(requester, {"web-02": [22]})
    assert open_all(opened) == ["open"]
    sync(prod)  # Azure's records of web-02 now hold the portal's initiate, under the portal's own identity
    page = alice.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    assert "alice<wbr>@contoso.example" in page  # a user name may break before its "@"
    rows = dict(re.findall(r'<tr data-vm="([^"]+)"[^>]*>(.*?)</tr>', page.replace("<wbr>", "")))
    # web-01: the demo's request made in Azure itself (90 minutes left), which the portal did not open.
    assert "Open now: alice@contoso.example (22)" in rows["web-01"]
    assert re.findall(r'class="conn-open">([^<]*)<', rows["web-02"]) == [
        f"Open now: {opened.requester_name} (22)"]
    assert "Open now" not in rows["web-04"]  # its Azure requests have all ended


@pytest.mark.parametrize("sort", ["created_at", "-created_at", "end_at", "-end_at", "requester_name", "-requester_name",
                                  "state", "-state", "kind", "-kind", "source_prefix", "-source_prefix"])
def test_an_admins_requests_page_in_any_sort_walks_an_index_rather_than_sorting_every_request(
        prod, requester, policy_admin, client, sort):
    ask(requester, {"web-02": [22]})
    client.force_login(policy_admin)
    ask(requester, {"web-02": [22]})
    table = client.get(reverse("policies:requests"), {"sort": sort, "per_page": "1"}).context["table"]
    assert table.seek.rows and table.seek.next
    _a_deep_page_seeks_the_index(table, sort)
    page = table.data.data[:50]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # whether an index can serve the order, whatever these few rows favour
            cursor.execute("SET enable_seqscan = off; SET enable_sort = off")
            try:
                plan = page.explain()
            finally:
                cursor.execute("RESET enable_seqscan; RESET enable_sort")
        assert "Sort" not in plan, plan
    else:
        plan = page.explain()
        assert "TEMP B-TREE FOR ORDER BY" not in plan, plan


@pytest.mark.parametrize("sort", ["source_prefix", "-source_prefix"])
def test_the_requests_list_sorts_sources_by_their_numbers_page_after_page(prod, requester, policy_admin, client,
                                                                          sort):
    numeric = ["198.51.100.0/24", "203.0.113.0/28", "203.0.113.7/32", "203.0.113.69/32", "2001:db8::1/128"]
    for source in ["203.0.113.69/32", "2001:db8::1/128", "203.0.113.7/32", "198.51.100.0/24", "203.0.113.0/28"]:
        ask(requester, {"web-02": [22]}, source=source)
    client.force_login(policy_admin)
    shown, query = [], {"sort": sort, "per_page": "2"}
    while True:  # the keyset pages, each after the last one's cursor
        table = client.get(reverse("policies:requests"), query).context["table"]
        shown += [row.source_prefix for row in table.seek.rows]
        if not table.seek.next:
            break
        query = {**query, "after": table.seek.next}
    assert shown == (numeric if sort == "source_prefix" else numeric[::-1])


def _a_deep_page_seeks_the_index(table, sort: str) -> None:
    """The queries of the page after the first (``jitportal.lib.keyset``) seek the sort's index: nothing sorted, no
    walk of the rows before the cursor, however many tie with it."""
    from jitportal.lib.keyset import seek_page

    key, descending = table.seek_key()
    with CaptureQueriesContext(connection) as queries:
        seek_page(table.data.data.prefetch_related(None), key=key, descending=descending, after=table.seek.next,
                  size=50)
    plans = plans_of(queries, index_if_possible=True)
    assert len(plans) == 2, plans  # the rows tying with the cursor's, then those past it
    if connection.vendor == "postgresql":
        assert not any("Sort" in plan for plan in plans), plans
    else:
        field = key.lstrip("-")
        assert f"{field}=? AND id" in plans[0] and (f"({field}>?)" in plans[1] or f"({field}<?)" in plans[1]), plans
        assert not any("TEMP B-TREE" in plan for plan in plans), plans


def test_a_request_page_looks_its_extensions_up_rather_than_walking_every_request(prod, requester, alice, analyze):
    """With ANALYZE's statistics (nearly every request extends none), SQLite read the extensions of the request
    shown by walking every request newest first: 31 ms at 100,000 requests."""
    ask(requester, {"web-02": [22]})
    first = AccessRequest.objects.get()
    AccessRequest.objects.bulk_create(
        AccessRequest(requester=requester, requester_name=first.requester_name, justification="bulk",
                      idempotency_key=f"bulk-{n}", source_prefix=first.source_prefix, end_at=first.end_at,
                      state=first.state) for n in range(3000))
    analyze()
    assert alice.get(reverse("policies:request_detail", args=[first.pk])).status_code == 200
    plan = first.extensions.all().explain()
    if connection.vendor == "postgresql":
        assert "Seq Scan" not in plan and "Sort" not in plan, plan
    else:
        assert not re.search(r"\bSCAN\b", plan) and "TEMP B-TREE" not in plan, plan


def test_a_requester_whose_role_was_taken_away_still_sees_and_closes_their_open_request(prod, requester, alice,
                                                                                        outsider, client):
    from accounts.models import RoleMapping
    from audit.models import AuditEvent
    from policies.access import services
    from tests.plugins.personas import IN_SCOPE
    from tests.policies.access.factories import make_access_request

    request = ask(requester, {"web-02": [22]})
    open_all(request)
    other = make_access_request(f"{IN_SCOPE}/resourceGroups/rg-web-prod")  # someone else's, open too
    RoleMapping.objects.filter(role="requester").delete()  # alice's last requester mappings (app role and group)

    detail = reverse("policies:request_detail", args=[request.pk])
    page = alice.get(detail).content.decode()
    assert 'id="close-form"' in page and 'name="duration"' not in page  # Close now, but no Extend
    listed = alice.get(reverse("policies:requests")).content.decode()
    assert f'data-request="{request.pk}"' in listed and f'data-request="{other.pk}"' not in listed
    assert alice.get(reverse("policies:request_status", args=[request.pk])).status_code == 200
    # Not someone else's request, and not a new or longer access of their own.
    assert alice.get(reverse("policies:request_detail", args=[other.pk])).status_code == 404
    assert alice.post(reverse("policies:request_close", args=[other.pk])).status_code == 404
    assert alice.post(reverse("policies:request_extend", args=[request.pk]), {"duration": 3600}).status_code == 404
    assert alice.get(reverse("policies:request_new"), {"vm": [vm("web-02").pk]}).status_code == 403

    closed = alice.post(reverse("policies:request_close", args=[request.pk]), follow=True)
    assert f"Closing request #{request.pk}." in closed.content.decode()
    assert AccessRequest.objects.get(pk=request.pk).closed_by_id == requester.pk
    assert AccessRequest.objects.get(pk=other.pk).closed_at is None
    assert AuditEvent.objects.filter(action="access.close_requested", actor=requester).count() == 1
    assert services.request_close_apply(request_id=request.pk).state == "closed"

    client.force_login(outsider)  # no role, not theirs: nothing to see or close
    assert client.get(detail).status_code == 404
    assert client.get(reverse("policies:request_status", args=[request.pk])).status_code == 404
    assert client.post(reverse("policies:request_close", args=[request.pk])).status_code == 404


def test_an_admins_page_looks_up_the_scope_of_each_request_walked_not_of_every_request_first(
        prod, requester, policy_admin, client, analyze):
    """PostgreSQL would otherwise hash every request VM row of the admin's subscription before the first row of a
    page (40 ms at 100,000 requests), however few rows the page needs."""
    from policies.access.models import AccessRequestVm

    ask(requester, {"web-02": [22]})
    first = AccessRequest.objects.get()
    row = first.vms.get()
    copies = AccessRequest.objects.bulk_create(
        AccessRequest(requester=requester, requester_name=first.requester_name, justification="bulk",
                      idempotency_key=f"bulk-{n}", source_prefix=first.source_prefix, end_at=first.end_at,
                      state=first.state) for n in range(3000))
    AccessRequestVm.objects.bulk_create(
        AccessRequestVm(request=copy, vm_id=row.vm_id, vm_arm_id=row.vm_arm_id, vm_name=row.vm_name,
                        subscription_key=row.subscription_key, resource_group=row.resource_group,
                        policy_key=row.policy_key) for copy in copies)
    analyze()
    client.force_login(policy_admin)
    table = client.get(reverse("policies:requests"), {"sort": "-end_at"}).context["table"]
    plan = table.data.data[:50].explain()
    if connection.vendor == "postgresql":
        assert "SubPlan" in plan and "hashed SubPlan" not in plan, plan
    else:
        assert "CORRELATED SCALAR SUBQUERY" in plan, plan  # SQLite always looks each row up


@pytest.mark.parametrize("address, fact", [
    ("127.0.0.1", "127.0.0.1 is a local address (the requester's IP as the portal saw it): Azure sees their public "
                  "address instead"),
    ("10.1.2.3", "10.1.2.3 is a private or carrier-grade NAT address (the requester's IP as the portal saw it)")])
def test_the_request_and_review_pages_state_the_my_ip_warning_without_the_forms_advice(
        prod, alice, client, approver, address, fact):
    """The form's warning asks the requester to type another address; once the request is made there is no box to
    type it in, and its approvers read the page too: both pages state the fact about the request instead."""
    web = vm("web-02")
    response = alice.get(reverse("policies:request_new"), {"vm": [web.pk]}, REMOTE_ADDR=address)
    token, form = token_of(response), response.content.decode().replace("&#x27;", "'")
    assert "Enter it yourself" in form or "enter your proxy's range" in form  # the form's advice stays on the form
    page = alice.post(reverse("policies:request_new"), {
        "vm": [web.pk], "ports": [f"{web.pk}:22"], "source_kind": "my_ip", "duration": 3600,
        "justification": "Deploy", "token": token}, REMOTE_ADDR=address, follow=True).content.decode()
    page = page.replace("&#x27;", "'")
    request = AccessRequest.objects.get()
    assert fact in page and page.count('id="source-note"') == 1
    assert "Enter it yourself" not in page and "enter your proxy's range" not in page

    client.force_login(approver)
    review = client.get(reverse("policies:request_review", args=[request.pk])).content.decode().replace("&#x27;", "'")
    assert fact in review and "Enter it yourself" not in review and "enter your proxy's range" not in review



def test_closing_early_behind_a_firewall_says_the_portal_replaced_the_request(prod, alice, requester, fresh_emulator):
    """Close now behind an Azure Firewall is the portal's own newer request: the page says so, not that someone's
    newer request took the port, nor that an allow rule was removed."""
    from policies.access import services

    def closed_page(vms: dict) -> str:
        request = ask(requester, vms)
        open_all(request)
        services.request_close(actor=requester, request=request)
        assert services.request_close_apply(request_id=request.pk).state == "closed"
        return alice.get(reverse("policies:request_detail", args=[request.pk])).content.decode()

    page = closed_page({"db-01": [22]})
    firewall_vm = page.split('data-vm="db-01"')[1]
    assert "Closed by the portal: Azure revoked it for the portal's 5-minute request" in firewall_vm
    assert "A newer request on this port replaced it" not in page
    note = strip_tags(page.split('id="closed-note">')[1].split("</p>")[0])
    assert "address no host uses" in note and "removed the JIT allow rule" not in note

    page = closed_page({"db-02": [22], "web-02": [22]})
    assert "Closed by the portal" not in page.split('data-vm="web-02"')[1]
    note = strip_tags(page.split('id="closed-note">')[1].split("</p>")[0])
    assert "removed the JIT allow rule from the network security groups" in note
    assert "Behind the Azure Firewall, the portal asked Azure" in note


def test_access_a_policy_admin_closed_or_cancelled_says_who_to_its_requester(prod, alice, requester, policy_admin):
    """Alice's request closed early by bob (a policy admin) says so on her page, by name; her own close does not."""
    from policies.access import services

    def closed_note(request) -> str:
        page = alice.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
        return strip_tags(page.split('id="closed-note">')[1].split("</p>")[0])

    opened = ask(requester, {"web-02": [22]})
    open_all(opened)
    services.request_close(actor=policy_admin, request=opened)
    assert services.request_close_apply(request_id=opened.pk).state == "closed"
    assert closed_note(opened).startswith(f"Closed early by {policy_admin.display_name} ({policy_admin.username}) on ")

    queued = ask(requester, {"web-03": [22]})
    services.request_close(actor=policy_admin, request=queued)
    assert closed_note(queued).startswith(f"Cancelled by {policy_admin.display_name} ({policy_admin.username}) on ")

    mine = ask(requester, {"web-04": [22]})
    open_all(mine)
    services.request_close(actor=requester, request=mine)
    assert services.request_close_apply(request_id=mine.pk).state == "closed"
    assert closed_note(mine).startswith("Closed early:")


def _removal_notes(client, request) -> tuple[str, dict[tuple[str, int], str]]:
    """The request page's ended note (``""`` without one) and each port's removal help, as text."""
    page = client.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
    note = page.split('id="closed-note">')[1].split("</p>")[0] if 'id="closed-note">' in page else ""
    helps = {}
    for vm_block in page.split('data-vm="')[1:]:
        name = vm_block.split('"')[0]
        for row in vm_block.split('<tr data-port="')[1:]:
            found = re.search(r'<div class="help port-removal">(.*?)</div>', row.split("</tr>")[0], re.S)
            if found:
                helps[(name, int(row.split('"')[0]))] = found.group(1)
    return note, helps


def _applied_at(action: str, vm_name: str):
    from audit.models import AuditEvent

    return AuditEvent.objects.filter(action=action, target_label=vm_name).latest("occurred_at").occurred_at


def test_access_ended_by_a_policy_admin_removing_jit_says_who_removed_it_and_when(prod, alice, requester,
                                                                                  policy_admin):
    """Bob removes JIT from web-02 while alice's request is open on it: her page says he did, and when (his name
    escaped), not only that Azure revoked it; so does the e-mail she gets."""
    from notifications.models import PendingEvent
    from notifications.payloads import reason_text
    from policies import services as policy_services
    from policies.access import services
    from tests.policies.factories import apply_all

    policy_admin.display_name = "Bob <Security> Admin"
    policy_admin.save(update_fields=["display_name"])
    mine = ask(requester, {"web-02": [22]})
    assert open_all(mine) == ["open"]
    policy_services.policy_remove(actor=policy_admin, vm=vm("web-02"))
    assert apply_all() == ["applied"]
    assert services.reconcile()["revoked"] == 1
    at = _applied_at("policy.remove_applied", "web-02")
    note, helps = _removal_notes(alice, mine)
    who = "Bob &lt;Security&gt; Admin (bob@contoso.example)"
    assert strip_tags(note) == (f"Closed when {who} removed JIT from web-02 at "
                                f"{strip_tags(str(zoned_time(at)))}.")
    assert "<Security>" not in note
    assert strip_tags(helps[("web-02", 22)]) == strip_tags(note)
    told = PendingEvent.objects.get(event="closed", request_id=mine.pk)
    assert told.detail["removed"] == [{"vm": "web-02", "ports": [22], "whole": True,
                                       "by": "Bob <Security> Admin (bob@contoso.example)", "at": utc_iso(at)}]
    assert reason_text(told.detail) == (f"closed when Bob <Security> Admin (bob@contoso.example) removed JIT from "
                                        f"web-02 at {at.astimezone(UTC):%Y-%m-%d %H:%M} UTC")


def test_a_port_removed_from_the_policy_while_open_says_who_removed_it(prod, alice, requester, policy_admin):
    """Bob drops port 3389 from web-02's JIT policy: that port of alice's open request says he did; 22 stays open."""
    from policies import rules
    from policies import services as policy_services
    from policies.access import services
    from tests.policies.factories import apply_all

    both = [rules.PortRule(22, "*", ("*",), "PT3H"), rules.PortRule(3389, "*", ("*",), "PT3H")]
    policy_services.policy_save(actor=policy_admin, vm=vm("web-02"), ports=both)
    assert apply_all() == ["applied"]
    mine = ask(requester, {"web-02": [22, 3389]})
    assert open_all(mine) == ["open"]
    policy_services.policy_save(actor=policy_admin, vm=vm("web-02"), ports=both[:1])
    assert apply_all() == ["applied"]
    assert services.reconcile()["revoked"] == 1
    assert states(mine) == {("web-02", 22): "open", ("web-02", 3389): "closed"}
    at = _applied_at("policy.save_applied", "web-02")
    note, helps = _removal_notes(alice, mine)
    assert note == "" and list(helps) == [("web-02", 3389)]
    assert strip_tags(helps[("web-02", 3389)]) == (
        f"Closed when {policy_admin.display_name} (bob@contoso.example) removed port 3389 from the JIT policy of "
        f"web-02 at {strip_tags(str(zoned_time(at)))}.")


def test_jit_removed_in_azure_itself_says_so_once_the_sync_has_seen_it(prod, alice, requester, fresh_emulator):
    """JIT removed from web-02 in Azure (no one in the portal did): once the sync has seen it gone, alice's page says
    it was removed in Azure itself; before, Azure's revocation is all that is known."""
    from policies.access import services

    mine = ask(requester, {"web-02": [22]})
    assert open_all(mine) == ["open"]
    policies = Azure(fresh_emulator).security.jit_network_access_policies
    policy = policies.get("rg-web-prod", "westeurope", "default")
    policy.virtual_machines = [e for e in policy.virtual_machines if not e.id.lower().endswith("/web-02")]
    policies.create_or_update("rg-web-prod", "westeurope", "default", body=policy)
    assert services.reconcile()["revoked"] == 1
    note, helps = _removal_notes(alice, mine)
    assert note.startswith("Azure revoked it before its end") and not helps
    sync(prod)
    note, helps = _removal_notes(alice, mine)
    assert note == "Closed when JIT was removed from web-02 in Azure itself, outside the portal."
    assert helps == {("web-02", 22): note}


def test_the_request_page_finds_who_removed_jit_in_one_query_for_any_number_of_vms(
        prod, alice, requester, policy_admin):
    from policies import services as policy_services
    from policies.access import services
    from tests.policies.factories import apply_all

    def page_queries(request) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert alice.get(reverse("policies:request_detail", args=[request.pk])).status_code == 200
        return len(queries.captured_queries)

    mine = ask(requester, {"web-02": [22], "web-03": [22], "web-04": [22]})
    assert open_all(mine) == ["open"]
    policy_services.policy_remove(actor=policy_admin, vm=vm("web-02"))
    apply_all()
    services.reconcile()
    one = page_queries(mine)
    for name in ("web-03", "web-04"):
        policy_services.policy_remove(actor=policy_admin, vm=vm(name))
    apply_all()
    services.reconcile()
    assert set(states(mine).values()) == {"closed"}
    assert len(_removal_notes(alice, mine)[1]) == 3
    assert page_queries(mine) <= one


def _closed_page(client, request) -> tuple[str, str]:
    """The request page's ended note and its VMs' part, as text."""
    page = client.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
    note = page.split('id="closed-note">')[1].split("</p>")[0] if 'id="closed-note">' in page else ""
    return strip_tags(note), page.split('id="request-status"')[1].split('id="close-form"')[0]


def test_access_ended_by_its_policys_deletion_says_who_removed_jit_and_shows_no_connection(
        prod, alice, requester, policy_admin):
    """Bob removes JIT from jump-01 and jump-02, the last VMs of their policy: the portal deletes the policy. Once
    the reconciler has run, alice's page says Bob ended it, and no longer offers connection details."""
    from policies import services as policy_services
    from policies.access import services
    from tests.policies.factories import apply_all

    mine = ask(requester, {"jump-01": [3389]})
    assert open_all(mine) == ["open"]
    assert 'class="connection"' in _closed_page(alice, mine)[1]
    for name in ("jump-01", "jump-02"):
        policy_services.policy_remove(actor=policy_admin, vm=vm(name))
    assert apply_all() == ["applied", "applied"]
    services.reconcile()
    at = _applied_at("policy.remove_applied", "jump-01")
    note, vms = _closed_page(alice, mine)
    assert note == (f"Closed when {policy_admin.display_name} (bob@contoso.example) removed JIT from jump-01 at "
                    f"{strip_tags(str(zoned_time(at)))}.")
    assert 'class="connection"' not in vms and "time-left" not in vms and "Closed</td>" in vms


def test_close_now_after_the_policy_went_in_azure_says_nothing_was_left_to_remove(prod, alice, requester,
                                                                                 fresh_emulator):
    """The policy of db-01 (behind an Azure Firewall) is deleted in Azure itself; alice's Close now finds it gone: the
    page says the access had already gone with the policy, not that the portal removed a rule or replaced the
    request."""
    from policies.access import services

    mine = ask(requester, {"db-01": [22]})
    assert open_all(mine) == ["open"]
    Azure(fresh_emulator).security.jit_network_access_policies.delete("rg-data-prod", "northeurope", "default")
    services.request_close(actor=requester, request=mine)
    assert services.request_close_apply(request_id=mine.pk).state == "closed"
    note, vms = _closed_page(alice, mine)
    assert note == ("Closed early: the JIT policy of db-01 no longer existed in Azure (JIT was removed from every VM "
                    "in it), so Azure had already revoked this access and removed its rules: there was nothing left "
                    "to remove.")
    assert "Its JIT policy no longer exists in Azure" in vms and "Closed by the portal" not in vms


def test_a_policy_deleted_in_azure_itself_says_so_then_names_it_once_synced(prod, alice, requester, fresh_emulator):
    """The policy of jump-01 deleted in Azure (no one in the portal did): the page says the policy was deleted at
    once, and that JIT was removed in Azure itself once a sync has seen it."""
    from policies.access import services

    mine = ask(requester, {"jump-01": [3389]})
    assert open_all(mine) == ["open"]
    Azure(fresh_emulator).security.jit_network_access_policies.delete("rg-ops-prod", "westeurope", "default")
    assert services.reconcile()["revoked"] == 1
    note, vms = _closed_page(alice, mine)
    assert note == ("Closed when the JIT policy of jump-01 was deleted (JIT was removed from every VM in it): Azure "
                    "revoked this access and removed its rules with it.")
    assert 'class="connection"' not in vms
    sync(prod)
    note, _vms = _closed_page(alice, mine)
    assert note == "Closed when JIT was removed from jump-01 in Azure itself, outside the portal."


def test_the_dashboards_open_access_asks_for_itself_again_sooner_while_a_port_opens(prod, requester, client):
    request = ask(requester, {"web-02": [22]})  # queued: the worker opens it in a moment
    client.force_login(requester)
    page = client.get(reverse("dashboard")).content.decode()
    assert re.search(r'id="my-open-access" hx-get="/dashboard/open-access/" hx-trigger="every 2s"', page)
    open_all(request)
    part = client.get(reverse("dashboard_open_access"), HTTP_HX_REQUEST="true")
    assert part.status_code == 200 and part.content.decode().lstrip().startswith('<div class="module" id="my-open')
    assert 'hx-trigger="every 30s"' in part.content.decode() and 'data-port="web-02:22"' in part.content.decode()


def test_a_request_without_ports_or_justification_says_what_to_fill_in(prod, alice):
    web02 = vm("web-02")
    response = post_form(alice, web02, token_of(form_page(alice, web02)), ports=[], justification="")
    page = response.content.decode()
    assert response.status_code == 400 and not AccessRequest.objects.exists()
    assert "Say why you need access." in field_error(page, "justification")
    errors = re.findall(r'<ul class="errorlist"[^>]*>(.*?)</ul>', page, re.S)
    assert any("Select at least one port to open." in e for e in errors), errors
    assert "This field is required." not in page


def _connect_edit(page: str) -> tuple[str, dict]:
    """What a browser sends with the Connect page's "Choose ports, source and time range…" button: the Connect form's
    fields, to the button's ``formaction``, with the button's own name and value."""
    form = re.search(r'<form method="post" id="connect-form">(.*?)</form>', page, re.S).group(1)
    button = re.search(r'<button type="submit"[^>]*id="connect-full-form"[^>]*>', page).group(0)
    data = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))
    data[re.search(r'name="(\w+)"', button).group(1)] = re.search(r'value="(\w+)"', button).group(1)
    return html.unescape(re.search(r'formaction="([^"]+)"', button).group(1)), data


def test_the_full_form_opened_from_the_connect_page_keeps_what_was_typed_there(prod, alice):
    """The Connect page's way to the full request form sends what was typed (never in the URL): the full form shows
    it, to change and send, and nothing is asked for yet."""
    jump = vm("jump-02")
    page = alice.get(reverse("policies:connect", args=[jump.pk]), REMOTE_ADDR=MY_IP).content.decode()
    action, data = _connect_edit(page)
    assert action == reverse("policies:request_new") and "formnovalidate" in page  # an empty box may go too
    typed = "Rotate the host keys <b>now</b> & after: ü"
    response = alice.post(action, {**data, "justification": typed}, REMOTE_ADDR=MY_IP)
    form = response.content.decode()
    assert response.status_code == 200 and not AccessRequest.objects.exists()
    assert re.search(r'<textarea[^>]*name="justification"[^>]*>\s*' + re.escape(html.escape(typed)) + "</textarea>",
                     form)
    assert summary_items(form) is None and "errorlist" not in form  # shown to edit, not refused
    assert re.search(rf'name="ports" value="{jump.pk}:22"[^>]*checked', form)  # the Connect page's defaults
    assert re.search(r'name="source_kind" value="my_ip"[^>]*checked', form)
    assert re.search(r'<option value="10800" selected>', form)  # jump-02's port: 3 hours, as Connect asked
    assert token_of(response) != data["token"]  # a form of its own, sent once
    sent = post_form(alice, jump, token_of(response), justification="Rotate the host keys")
    assert sent.status_code == 302 and AccessRequest.objects.get().justification == "Rotate the host keys"


def test_the_connect_pages_summary_sends_what_was_typed_to_the_full_form(prod, alice):
    """An error at a field the Connect page does not show: its way to the full form is a button of the Connect
    form, so the justification typed goes along."""
    jump = vm("jump-02")
    VirtualMachine.objects.filter(pk=jump.pk).update(ports=[{"number": 22, "protocol": "*",
                                                              "allowedSourceAddressPrefix": "10.0.0.0/8",
                                                              "maxRequestAccessDuration": "PT3H"}])
    url = reverse("policies:connect", args=[jump.pk])
    page = alice.post(url, {"token": token_of(alice.get(url, REMOTE_ADDR=MY_IP)), "justification": "Deploy 4.2",
                            "vm": jump.pk}, REMOTE_ADDR=MY_IP).content.decode()
    fix = re.search(r'id="form-errors".*?(<button [^>]*>)choose it in the full request form</button>', page, re.S)
    assert fix, page
    assert all(attribute in fix.group(1) for attribute in (
        'type="submit"', 'form="connect-form"', f'formaction="{reverse("policies:request_new")}"', 'name="then"',
        'value="edit"', "formnovalidate"))
    form = alice.post(reverse("policies:request_new"), {**_connect_edit(page)[1], "justification": "Deploy 4.2"},
                      REMOTE_ADDR=MY_IP).content.decode()
    assert re.search(r'name="justification"[^>]*>\s*Deploy 4.2</textarea>', form)
    assert not AccessRequest.objects.exists()


def test_access_whose_end_passed_is_neither_extended_nor_closed(prod, alice, requester):
    """The page shows access past its end as expired, without Extend or Close now, before the reconciler marks it:
    an Extend or Close now sent from the page shown before its end (or through the API) opened the VM again for an
    extension, or recorded the access as closed by its requester."""
    from audit.models import AuditEvent

    request = ask(requester, {"web-02": [22]})
    open_all(request)
    page = alice.get(reverse("policies:request_detail", args=[request.pk])).content.decode()
    token = re.search(r'id="extend-form".*?name="token" value="([0-9a-f]+)"', page, re.S).group(1)
    past = timezone.now() - timedelta(minutes=1)
    request.ports.update(end_at=past)
    AccessRequest.objects.filter(pk=request.pk).update(end_at=past)

    extended = alice.post(reverse("policies:request_extend", args=[request.pk]), {"duration": 3600, "token": token},
                          follow=True)
    assert extended.redirect_chain[-1][0] == reverse("policies:request_detail", args=[request.pk])
    assert "Its access has ended: ask for access again." in html.unescape(extended.content.decode())
    assert not AccessRequest.objects.filter(extends=request).exists()

    closed = alice.post(reverse("policies:request_close", args=[request.pk]), follow=True).content.decode()
    assert "This request is no longer open." in closed and f"Closing request #{request.pk}." not in closed
    assert AccessRequest.objects.get(pk=request.pk).closed_at is None
    assert not AuditEvent.objects.filter(action="access.close_requested").exists()
