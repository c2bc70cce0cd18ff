"""Inventory, VM and JIT edit pages: what each persona sees and may post, validation errors, query counts.

No cloud call happens here: changes are only queued (tasks are captured, not run).
"""
from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from policies.models import DriftFinding, PolicyChange, Subscription, VirtualMachine, VmState
from tests.policies.factories import make_many_vms, make_vm
from tests.words import names

IN_RG = "/subscriptions/c0a1b2c3-0000-4000-8000-000000000001/resourceGroups/rg-web-prod"
OUT_RG = "/subscriptions/c0a1b2c3-0000-4000-8000-000000000002/resourceGroups/rg-dev"


def not_configured(vm: VirtualMachine) -> VirtualMachine:
    VirtualMachine.objects.filter(pk=vm.pk).update(state=VmState.NOT_CONFIGURED, ports=[], policy_name="")
    vm.refresh_from_db()
    return vm


def edit_post(vm: VirtualMachine, rows: list[dict]) -> dict:
    data = {"ports-TOTAL_FORMS": str(len(rows)), "ports-INITIAL_FORMS": str(len(vm.ports)),
            "ports-MIN_NUM_FORMS": "0", "ports-MAX_NUM_FORMS": "50"}
    for i, row in enumerate(rows):
        for key, value in {"protocol": "*", "sources": "*", "max_hours": "3", "max_minutes": "0", **row}.items():
            data[f"ports-{i}-{key}"] = value
    return data


def _basis(page) -> str:
    """The digest of what a page's form was shown with (its hidden ``basis``), as a browser sends it back."""
    return re.search(r'name="basis" value="([0-9a-f.]+)"', page.content.decode()).group(1)


def shown_basis(client, vm: VirtualMachine) -> str:
    """The basis of the JIT settings form of ``vm`` as it is shown now."""
    return _basis(client.get(reverse("policies:policy_edit", kwargs={"pk": vm.pk})))


@pytest.mark.django_db
@pytest.mark.parametrize("rows", [10, 200])
def test_the_inventory_page_runs_a_fixed_number_of_queries(client, policy_admin, django_assert_max_num_queries,
                                                           rows):
    from tests.policies.factories import make_policy_change

    vms = make_many_vms(rows)
    change = make_policy_change(OUT_RG)  # every row with a change not applied yet: named without a query per row
    PolicyChange.objects.filter(pk=change.pk).update(state=PolicyChange.State.QUEUED)
    change.vms.add(*vms)
    client.force_login(policy_admin)
    for tab in ("configured", "not_configured", "unsupported"):
        # ... and shown as someone who reads only some of its VMs sees it: one query for every change (15th)
        with django_assert_max_num_queries(15):
            response = client.get(reverse("policies:inventory"), {"tab": tab, "sort": "-last_access_at"})
        assert response.status_code == 200
        assert ("pending-change" in response.content.decode()) == (tab != "unsupported")
    assert f"({(rows + 2) // 3})" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(("query", "last", "rows"), [({}, 2, 10), ({"per_page": "25"}, 3, 10),
                                                     ({"q": "vm-0000"}, 1, 4)])
def test_a_page_past_the_end_of_the_inventory_shows_the_last_page(client, policy_admin,
                                                                   django_assert_max_num_queries, query, last, rows):
    make_many_vms(3 * 60)  # 60 in each tab
    client.force_login(policy_admin)
    with django_assert_max_num_queries(14):
        response = client.get(reverse("policies:inventory"), {"tab": "configured", "page": "9999", **query})
    page = response.context["table"].page
    assert (page.number, len(page.object_list), page.has_next()) == (last, rows, False)
    assert f"Page {last}" in response.content.decode()


@pytest.mark.django_db
def test_the_filter_keeps_the_sort_order_and_a_new_sort_starts_at_page_one(client, policy_admin):
    import re

    make_many_vms(3 * 60)
    client.force_login(policy_admin)
    page = client.get(reverse("policies:inventory"),
                      {"tab": "configured", "sort": "-last_access_at", "page": "2", "per_page": "20"}).content.decode()
    filter_form = page[page.index('id="inventory-filter"'):]
    filter_form = filter_form[:filter_form.index("</form>")]
    assert '<input type="hidden" name="sort" value="-last_access_at">' in filter_form
    assert '<input type="hidden" name="per_page" value="20">' in filter_form  # the page size stays too
    headers = re.findall(r'<th class="col-[^"]+"><a href="([^"]+)"', page)
    assert headers and all("sort=" in href and not re.search(r"[?;]page=", href) for href in headers)
    previous = re.search(r'id="page-previous" href="([^"]+)"', page).group(1)
    assert {"tab=configured", "sort=-last_access_at", "per_page=20", "page=1"} == set(previous[1:].split("&amp;"))
    unsorted = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    assert 'name="sort"' not in unsorted


@pytest.mark.django_db
def test_the_paging_bar_offers_rows_per_page_keeping_the_filters_tab_and_sort_from_page_one(client, policy_admin):
    """``?per_page=`` worked only typed into the address."""
    make_many_vms(3 * 60)  # 60 in each tab
    client.force_login(policy_admin)
    shown = {"tab": "not_configured", "os": "Linux", "q": "vm-0", "sort": "-name", "per_page": "20", "page": "2"}
    page = client.get(reverse("policies:inventory"), shown).content.decode()
    bar = re.search(r'<div class="paginator">(.*?)</div>', page, re.S).group(1)
    form = re.search(r'<form method="get" class="page-size" id="page-size-form">(.*?)</form>', bar, re.S).group(1)
    kept = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))
    assert kept == {"tab": "not_configured", "os": "Linux", "q": "vm-0", "sort": "-name"}  # from page 1
    assert '<label for="page-size">Rows per page</label>' in form
    assert re.findall(r'<option value="(\d+)"( selected)?>', form) == [
        ("20", " selected"), ("25", ""), ("50", ""), ("100", "")]  # the size shown is one of them
    assert '<button type="submit" class="button" id="page-size-show">Show</button>' in form
    chosen = client.get(reverse("policies:inventory"), {**kept, "per_page": "25"})
    assert len(chosen.context["table"].page.object_list) == 25
    assert re.findall(r'<option value="(\d+)"( selected)?>', chosen.content.decode()) == [
        ("25", " selected"), ("50", ""), ("100", "")]
    # A list the smallest size shows whole offers none.
    few = client.get(reverse("policies:inventory"), {"tab": "configured", "q": "vm-0000"}).content.decode()
    assert 'id="page-size"' not in few and "Page 1" in few


@pytest.mark.django_db
def test_the_inventory_shows_three_tabs_with_counts_and_filters(client, policy_admin):
    make_many_vms(30)
    client.force_login(policy_admin)
    page = client.get(reverse("policies:inventory"), {"tab": "not_configured", "os": "Windows"}).content.decode()
    assert 'id="tab-configured"' in page and "Configured <span class=\"count\">(5)</span>" in page
    assert "Not configured <span class=\"count\">(5)</span>" in page
    assert 'id="enable-selected"' in page
    page = client.get(reverse("policies:inventory"), {"q": "vm-00003"}).content.decode()
    assert "vm-00003" in page and "vm-00006" not in page


@pytest.mark.django_db
def test_a_resource_group_admin_sees_no_subscription_wide_sync_runs_or_locations(client, policy_admin):
    from django.utils import timezone

    from policies.models import SyncRun
    from tests.audit.factories import user_with_role

    make_many_vms(4, group="rg-web-prod")  # westeurope and northeurope
    subscription = VirtualMachine.objects.first().subscription
    subscription.locations = ["japaneast", "northeurope", "westeurope"]
    subscription.resource_groups = ["rg-secret", "rg-web-prod"]
    subscription.save()
    SyncRun.objects.create(subscription=subscription, state=SyncRun.State.FAILED, vms_seen=1234,
                           error="AuthorizationFailed on rg-secret", finished_at=timezone.now())
    group_admin = user_with_role("gina@contoso.example", "policy_admin", IN_RG)
    for user, whole in ((group_admin, False), (policy_admin, True)):
        client.force_login(user)
        inventory = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
        status = client.get(reverse("policies:sync_status")).content.decode()
        assert "vm-00000" in inventory and 'value="westeurope"' in inventory and 'value="northeurope"' in inventory
        for page in (inventory, status):
            assert ("AuthorizationFailed on rg-secret" in page) is whole
        assert ('value="japaneast"' in inventory) is whole and ('value="rg-secret"' in inventory) is whole


@pytest.mark.django_db
def test_the_vm_page_names_its_nsgs_and_firewall_with_their_ids_in_the_title(client, requester):
    vm = make_vm(IN_RG)
    network = f"/subscriptions/{vm.subscription_key}/resourcegroups/rg-net/providers/microsoft.network"
    nsg, firewall = f"{network}/networksecuritygroups/nsg-web", f"{network}/azurefirewalls/fw-hub"
    VirtualMachine.objects.filter(pk=vm.pk).update(nsg_ids=[nsg], firewall_id=firewall, firewall_public_ip="20.50.10.4")
    client.force_login(requester)
    detail = client.get(reverse("policies:vm_detail", kwargs={"pk": vm.pk})).content.decode()
    assert f'<dd id="vm-nsgs"><code title="{nsg}">nsg-web</code><br></dd>' in detail
    assert f'<dd id="vm-firewall"><code title="{firewall}">fw-hub</code> (public IP 20.50.10.4)</dd>' in detail


@pytest.mark.django_db
def test_a_requester_sees_no_edit_controls_and_is_refused_on_a_direct_post(client, requester):
    vm = make_vm(IN_RG)
    client.force_login(requester)
    detail = client.get(reverse("policies:vm_detail", kwargs={"pk": vm.pk})).content.decode()
    assert 'id="edit-jit"' not in detail and 'id="remove-jit"' not in detail and 'id="connect"' in detail
    inventory = client.get(reverse("policies:inventory"), {"tab": "not_configured"}).content.decode()
    assert 'id="enable-selected"' not in inventory and "Sync now" not in inventory
    edit = client.post(reverse("policies:policy_edit", kwargs={"pk": vm.pk}), edit_post(vm, [{"number": "22"}]))
    assert edit.status_code == 404
    assert client.post(reverse("policies:vm_remove", kwargs={"pk": vm.pk})).status_code == 404
    assert client.post(reverse("policies:bulk_enable"), {"vm": [vm.pk]}).status_code == 403
    assert not PolicyChange.objects.exists()


@pytest.mark.django_db
def test_a_requester_selects_configured_vms_to_request_access_and_an_auditor_cannot(client, requester, auditor):
    vm = make_vm(IN_RG)
    client.force_login(requester)
    page = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    assert 'id="bulk-request"' in page and 'id="request-selected"' in page
    assert f'name="vm" value="{vm.pk}" form="bulk-request"' in page
    assert 'id="enable-selected"' not in page
    client.force_login(auditor)  # reads VMs, may not initiate
    page = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    assert vm.name in page and 'id="bulk-request"' not in page and 'name="vm"' not in page


@pytest.mark.django_db
def test_a_configured_vm_on_a_subscription_without_defender_plan_2_says_so_and_cannot_be_selected(
        client, requester, django_assert_max_num_queries):
    vm = make_vm(IN_RG)
    client.force_login(requester)
    vm.subscription.defender_p2 = False
    vm.subscription.save()
    with django_assert_max_num_queries(14):  # the subscription's plan comes with the page's query
        page = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    assert "JIT unavailable: Defender for Servers Plan 2 is off" in page
    assert f'name="vm" value="{vm.pk}"' not in page
    # A disabled box, described by the reason beside the name, as every row unselectable for a reason it states.
    assert f'<input type="checkbox" disabled aria-label="Select {vm.name}" aria-describedby="defender-{vm.pk}">' in page
    assert f'<span class="defender-flag" id="defender-{vm.pk}"' in page
    vm.subscription.defender_p2 = True
    vm.subscription.save()
    page = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    assert "Plan 2 is off" not in page and f'name="vm" value="{vm.pk}" form="bulk-request"' in page


@pytest.mark.django_db
def test_connect_is_offered_only_where_azure_would_open_a_port_and_the_vm_page_says_why_not(client, requester):
    """A configured VM on a subscription without Defender for Servers Plan 2 offered Connect in its row menu and on
    its page, though its Connect page could only say that Azure opens nothing there."""
    vm = make_vm(IN_RG)
    connect = reverse("policies:connect", args=[vm.pk])
    detail = reverse("policies:vm_detail", args=[vm.pk])
    client.force_login(requester)
    vm.subscription.defender_p2 = False
    vm.subscription.save()
    row = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    assert "Plan 2 is off" in row and f'href="{connect}"' not in row
    page = client.get(detail).content.decode()
    assert f'href="{connect}"' not in page and 'id="connect"' not in page
    why = " ".join(re.search(r'<p class="errornote" id="connect-unavailable">(.*?)</p>', page, re.S).group(1).split())
    assert "Access to this VM cannot be requested: Microsoft Defender for Servers Plan 2 is off" in why
    assert f"{vm.subscription.display_name} ({vm.subscription.subscription_id})" in why
    vm.subscription.defender_p2 = True
    vm.subscription.save()
    row = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    assert f'<li><a href="{connect}">Connect</a></li>' in row
    page = client.get(detail).content.decode()
    assert f'<a id="connect" href="{connect}">Connect</a>' in page and 'id="connect-unavailable"' not in page


@pytest.mark.django_db
def test_the_connection_details_show_the_ports_and_who_has_access_now(client, requester):
    from tests.policies.access.factories import make_access_request

    request = make_access_request(IN_RG)
    request.ports.update(state="open")
    vm = request.vms.get().vm
    VirtualMachine.objects.filter(pk=vm.pk).update(ports=[
        {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"},
        {"number": 3389, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}])
    client.force_login(requester)
    page = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    assert '<small class="conn-ports">Ports 22, 3389</small>' in page
    numbers = ", ".join(str(n) for n in sorted(request.ports.values_list("number", flat=True)))
    assert f'<small class="conn-open">Open now: {request.requester_name} ({numbers})</small>' in page
    request.ports.update(state="closed")
    page = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    assert "Open now" not in page


@pytest.mark.django_db
def test_the_request_form_without_vms_sends_the_requester_to_select_them(client, requester):
    client.force_login(requester)
    response = client.get(reverse("policies:request_new"), follow=True)
    assert response.redirect_chain == [(reverse("policies:inventory") + "?tab=configured", 302)]
    assert "Select the VMs you want to access" in response.content.decode()


@pytest.mark.django_db
def test_a_head_of_the_form_without_vms_leaves_no_message_for_the_next_page(client, requester):
    """A HEAD is answered as the GET without a body: the message it would flash is not shown on the user's next
    page; one flashed before it still is."""
    client.force_login(requester)
    inventory = reverse("policies:inventory") + "?tab=configured"
    assert client.head(reverse("policies:request_new"))["Location"] == inventory
    assert "Select the VMs you want to access" not in client.get(inventory).content.decode()
    client.get(reverse("policies:request_new"))  # flashed by a GET, for the next page
    assert client.head(reverse("policies:request_new")).status_code == 302
    page = client.get(inventory).content.decode()
    assert page.count("Select the VMs you want to access") == 1


@pytest.mark.django_db
def test_unsupported_vms_offer_no_edit_or_connect(client, policy_admin):
    [configured, _, unsupported] = make_many_vms(3)
    client.force_login(policy_admin)
    page = client.get(reverse("policies:inventory"), {"tab": "unsupported"}).content.decode()
    assert unsupported.name in page
    assert reverse("policies:policy_edit", args=[unsupported.pk]) not in page
    assert reverse("policies:connect", args=[unsupported.pk]) not in page
    page = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    assert reverse("policies:connect", args=[configured.pk]) in page


@pytest.mark.django_db
def test_a_policy_admin_outside_the_vms_scope_gets_404(client, policy_admin):
    vm = make_vm(OUT_RG)
    client.force_login(policy_admin)
    assert client.get(reverse("policies:policy_edit", kwargs={"pk": vm.pk})).status_code == 404
    assert client.get(reverse("policies:vm_detail", kwargs={"pk": vm.pk})).status_code == 404


@pytest.mark.django_db
def test_a_policy_admin_bulk_enables_selected_vms(client, policy_admin, django_capture_on_commit_callbacks):
    made = make_many_vms(6)
    vms = [not_configured(made[0]), not_configured(made[2])]  # one resource group and location: one policy
    client.force_login(policy_admin)
    page = client.get(reverse("policies:bulk_enable"), {"vm": [v.pk for v in vms]})
    assert page.status_code == 200 and not PolicyChange.objects.exists()
    formset = page.context["formset"]
    assert [form.initial["number"] for form in formset.initial_forms] == [22, 3389, 5985, 5986]
    text = page.content.decode()
    assert f"{vms[0].name}, {vms[1].name}" in text and 'id="add-port"' in text
    # Edit the recommendation: drop WinRM over HTTP, narrow SSH to a range, add a custom port.
    rows = [{"number": "22", "sources": "203.0.113.0/24"}, {"number": "3389"}, {"number": "5985", "DELETE": "on"},
            {"number": "5986"}, {"number": "8443", "protocol": "TCP", "max_hours": "1"}]
    data = {**edit_post(vms[0], rows), "ports-INITIAL_FORMS": "4", "vm": [v.pk for v in vms]}
    with django_capture_on_commit_callbacks(execute=False) as tasks:
        response = client.post(reverse("policies:bulk_enable"), data)
    assert response.status_code == 302
    change = PolicyChange.objects.get()
    assert len(tasks) == 1 and change.state == PolicyChange.State.QUEUED
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"Enabling JIT on {vms[0].name}, {vms[1].name} with ports 22, 3389, 5986, 8443 (1 policy change pending)."]
    for vm in vms:
        desired = {p["number"]: p for p in change.desired[vm.arm_id]}
        assert sorted(desired) == [22, 3389, 5986, 8443]
        assert desired[22]["allowedSourceAddressPrefix"] == "203.0.113.0/24"
        assert (desired[8443]["protocol"], desired[8443]["maxRequestAccessDuration"]) == ("TCP", "PT1H")


@pytest.mark.django_db
def test_the_port_rows_say_which_well_known_port_is_ssh_rdp_or_winrm(client, policy_admin):
    """The Enable JIT and Edit JIT rows showed bare numbers: which of 5985 and 5986 is WinRM over HTTPS?"""
    vm = not_configured(make_vm(IN_RG))
    client.force_login(policy_admin)

    def services(page: str) -> dict[str, str]:
        rows = re.findall(r'name="ports-(\d+)-number" value="(\d*)"[^>]*aria-describedby="id_ports-\1-number_service"'
                          r'[^>]*><small class="port-service" id="id_ports-\1-number_service">([^<]*)</small>', page)
        return {number: service for _, number, service in rows}

    page = client.get(reverse("policies:bulk_enable"), {"vm": [vm.pk]}).content.decode()
    assert services(page) == {"22": "SSH", "3389": "RDP", "5985": "WinRM HTTP", "5986": "WinRM HTTPS"}
    assert 'data-port-services="{&quot;22&quot;: &quot;SSH&quot;' in page  # for a port typed in a new row
    rows = [{"number": "3389", "sources": "not an address"}, {"number": "8443"}]
    page = _edit(client, vm, rows).content.decode()  # sent back with its errors: the rows as typed
    assert services(page) == {"3389": "RDP", "8443": ""}


@pytest.mark.django_db
def test_an_admin_reading_another_scope_selects_only_vms_they_configure_and_a_forged_mix_names_the_others(
        client, policy_admin, django_capture_on_commit_callbacks):
    from accounts.models import RoleMapping

    RoleMapping.objects.create(source_kind="app_role", source_value="JIT.PolicyAdmin", role="reader",
                               scope=OUT_RG.rsplit("/resourceGroups/", 1)[0])  # Dev/Test: read only
    mine, theirs = not_configured(make_vm(IN_RG)), not_configured(make_vm(OUT_RG))
    client.force_login(policy_admin)
    page = client.get(reverse("policies:inventory"), {"tab": "not_configured"}).content.decode()
    assert f'name="vm" value="{mine.pk}" form="bulk-enable"' in page
    assert f'Actions for {theirs.name}' in page and f'name="vm" value="{theirs.pk}"' not in page
    response = client.get(reverse("policies:bulk_enable"), {"vm": [mine.pk, theirs.pk]})
    page = response.content.decode()
    assert response.status_code == 200
    assert f"{theirs.name} was taken out of the selection: you may not configure JIT on it." in page
    assert f'<input type="hidden" name="vm" value="{mine.pk}">' in page and f'value="{theirs.pk}"' not in page
    data = {**edit_post(mine, [{"number": "22"}]), "ports-INITIAL_FORMS": "1", "vm": [mine.pk, theirs.pk]}
    response = client.post(reverse("policies:bulk_enable"), data)  # forged: the other scope's VM added back
    assert response.status_code == 400 and not PolicyChange.objects.exists()
    assert f"{theirs.name} was taken out of the selection: you may not configure" in response.content.decode()
    data["vm"] = [mine.pk]
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("policies:bulk_enable"), data).status_code == 302
    assert list(PolicyChange.objects.get().desired) == [mine.arm_id]
    response = client.get(reverse("policies:bulk_enable"), {"vm": [theirs.pk]}, follow=True)
    assert "you may not configure JIT on it" in response.content.decode()


@pytest.mark.django_db
def test_bulk_enabling_vms_of_two_subscriptions_writes_each_into_its_own_subscriptions_policy(client,
                                                                                             breakglass_admin):
    from tests.policies.factories import DEV, PROD

    # The same resource group name and location in both subscriptions: still two policies, one in each.
    vms = [not_configured(make_many_vms(1, subscription_id=sub)[0]) for sub in (PROD, DEV)]
    client.force_login(breakglass_admin)
    data = {**edit_post(vms[0], [{"number": "22"}]), "ports-INITIAL_FORMS": "1", "vm": [v.pk for v in vms]}
    assert client.post(reverse("policies:bulk_enable"), data).status_code == 302
    changes = {c.subscription_key: c for c in PolicyChange.objects.all()}
    assert sorted(changes) == sorted([PROD, DEV])
    for vm in vms:
        change = changes[vm.subscription_key]
        assert list(change.desired) == [vm.arm_id] and list(change.vms.all()) == [vm]
        assert change.subscription_id == vm.subscription_id
        assert change.policy_id.startswith(f"/subscriptions/{vm.subscription_key}/")


@pytest.mark.django_db
def test_bulk_enable_shows_errors_and_keeps_the_selection(client, policy_admin):
    vm = not_configured(make_many_vms(3)[0])
    client.force_login(policy_admin)
    rows = [{"number": "22"}, {"number": "22"}, {"number": "5985"}, {"number": "5986"}]  # 3389 edited into 22
    data = {**edit_post(vm, rows), "ports-INITIAL_FORMS": "4", "vm": [vm.pk]}
    response = client.post(reverse("policies:bulk_enable"), data)
    assert response.status_code == 400 and "Port 22 is listed twice." in response.content.decode()
    assert f'<input type="hidden" name="vm" value="{vm.pk}">' in response.content.decode()
    assert not PolicyChange.objects.exists()
    response = client.get(reverse("policies:bulk_enable"), follow=True)
    assert "Select at least one Not configured VM" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("number", ["\u0663\u0663", "\u06f2\u06f2", "\uff12\uff12"])  # Arabic-Indic, Persian, wide
def test_bulk_enable_refuses_a_port_typed_with_digits_other_than_0_to_9(client, policy_admin, number):
    vm = not_configured(make_many_vms(3)[0])
    client.force_login(policy_admin)
    data = {**edit_post(vm, [{"number": number}, {"number": "3389"}]), "ports-INITIAL_FORMS": "2", "vm": [vm.pk]}
    response = client.post(reverse("policies:bulk_enable"), data)
    page = response.content.decode()
    assert response.status_code == 400
    assert '<ul class="errorlist" id="id_ports-0-number_error"><li>Type the port number with the digits 0 to 9.' in page
    assert not PolicyChange.objects.exists()


@pytest.mark.django_db
def test_bulk_enable_returns_to_the_inventory_as_it_was_filtered_sorted_and_paged(
        client, policy_admin, django_capture_on_commit_callbacks):
    from urllib.parse import parse_qs, urlsplit

    vm = not_configured(make_many_vms(3)[0])
    client.force_login(policy_admin)
    shown = {"tab": "not_configured", "os": "Linux", "q": "vm-0", "sort": "-name", "per_page": "20", "page": "2"}
    page = client.get(reverse("policies:inventory"), shown).content.decode()
    form = page[page.index('id="bulk-enable"'):]
    back = re.search(r'<input type="hidden" name="back" value="([^"]+)">', form[:form.index("</form>")]).group(1)
    enable = client.get(reverse("policies:bulk_enable"), {"vm": [vm.pk], "back": back.replace("&amp;", "&")})
    text = enable.content.decode()
    expected = {key: [value] for key, value in shown.items()}
    kept = re.search(r'<input type="hidden" name="back" value="([^"]+)">', text).group(1).replace("&amp;", "&")
    assert parse_qs(kept) == expected  # sent again with the form
    cancel = re.search(r'<a href="([^"]+)">Cancel</a>', text).group(1).replace("&amp;", "&")
    assert urlsplit(cancel).path == reverse("policies:inventory") and parse_qs(urlsplit(cancel).query) == expected
    data = {**edit_post(vm, [{"number": "22"}]), "ports-INITIAL_FORMS": "1", "vm": [vm.pk], "back": kept}
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("policies:bulk_enable"), data)
    saved = {"saved": [str(PolicyChange.objects.get().pk)]}  # the change it made, followed on the inventory
    assert response.status_code == 302 and parse_qs(urlsplit(response["Location"]).query) == {**expected, **saved}
    # Only the inventory's own parameters come back, on its own page: nothing else rides along.
    data["back"] = "tab=configured&next=https://evil.example/&os=Linux"
    PolicyChange.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("policies:bulk_enable"), data)
    assert response["Location"] == (reverse("policies:inventory") + "?tab=not_configured&os=Linux"
                                    f"&saved={PolicyChange.objects.get().pk}")


@pytest.mark.django_db
def test_edit_from_the_inventorys_row_menu_returns_to_the_list_as_it_was(
        client, policy_admin, django_capture_on_commit_callbacks):
    from urllib.parse import parse_qs, urlsplit

    vm = make_many_vms(3)[0]  # Configured
    client.force_login(policy_admin)
    shown = {"tab": "configured", "os": "Linux", "q": "vm-0", "sort": "-name", "per_page": "20", "page": "1"}
    page = client.get(reverse("policies:inventory"), shown).content.decode()
    row = re.search(rf'<tr data-vm="{vm.name}".*?</tr>', page).group(0)
    edit = re.search(r'<a href="([^"]+)">Edit</a>', row).group(1).replace("&amp;", "&")
    assert urlsplit(edit).path == reverse("policies:policy_edit", kwargs={"pk": vm.pk})
    text = client.get(edit).content.decode()
    expected = {key: [value] for key, value in shown.items()}
    crumb = re.search(r'<a href="([^"]+)">Inventory</a>', text).group(1).replace("&amp;", "&")
    cancel = re.search(r'<a href="([^"]+)">Cancel</a>', text).group(1).replace("&amp;", "&")
    for link in (crumb, cancel):
        assert urlsplit(link).path == reverse("policies:inventory") and parse_qs(urlsplit(link).query) == expected
    kept = re.search(r'<input type="hidden" name="back" value="([^"]+)">', text).group(1).replace("&amp;", "&")
    data = {**edit_post(vm, [{"number": "22", "sources": "10.0.0.0/24"}]), "back": kept,
            "basis": shown_basis(client, vm)}
    refused = client.post(reverse("policies:policy_edit", kwargs={"pk": vm.pk}), {**data, "ports-0-number": "0"})
    assert refused.status_code == 400  # refused: the form still returns to the list
    assert re.search(r'<input type="hidden" name="back" value="([^"]+)">', refused.content.decode()
                     ).group(1).replace("&amp;", "&") == kept
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("policies:policy_edit", kwargs={"pk": vm.pk}), data)
    assert response.status_code == 302 and urlsplit(response["Location"]).path == reverse("policies:inventory")
    assert parse_qs(urlsplit(response["Location"]).query) == expected
    # Opened from the VM's page (no list to return to): back to that page, as before.
    with django_capture_on_commit_callbacks(execute=False):
        response = _edit(client, vm, [{"number": "22", "sources": "10.0.0.1"}])
    assert response["Location"] == reverse("policies:vm_detail", kwargs={"pk": vm.pk})


@pytest.mark.django_db
def test_bulk_enable_names_a_vm_configured_meanwhile_keeps_the_edits_and_saves_the_others(
        client, policy_admin, django_capture_on_commit_callbacks):
    made = make_many_vms(6)
    vms = [not_configured(made[0]), not_configured(made[2])]
    client.force_login(policy_admin)
    rows = [{"number": "22", "sources": "203.0.113.0/24"}, {"number": "3389", "DELETE": "on"},
            {"number": "5985", "DELETE": "on"}, {"number": "5986", "DELETE": "on"}, {"number": "8443"}]
    data = {**edit_post(vms[0], rows), "ports-INITIAL_FORMS": "4", "vm": [v.pk for v in vms]}
    VirtualMachine.objects.filter(pk=vms[1].pk).update(state=VmState.CONFIGURED, policy_name="default")  # someone else
    response = client.post(reverse("policies:bulk_enable"), data)
    page = response.content.decode()
    assert response.status_code == 400 and not PolicyChange.objects.exists()
    assert f"{vms[1].name} was taken out of the selection: it has JIT now" in page
    assert f'<input type="hidden" name="vm" value="{vms[0].pk}">' in page
    assert f'name="vm" value="{vms[1].pk}"' not in page
    assert 'value="203.0.113.0/24"' in page and 'value="8443"' in page  # the edits are still there
    data["vm"] = [vms[0].pk]
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("policies:bulk_enable"), data).status_code == 302
    desired = PolicyChange.objects.get().desired
    assert list(desired) == [vms[0].arm_id] and [p["number"] for p in desired[vms[0].arm_id]] == [22, 8443]
    # The only selected VM configured meanwhile: named, nothing to save, the edits still shown.
    VirtualMachine.objects.filter(pk=vms[0].pk).update(state=VmState.CONFIGURED, policy_name="default")
    response = client.post(reverse("policies:bulk_enable"), data)
    page = response.content.decode()
    assert response.status_code == 400 and "No selected VM is left to enable JIT on." in page
    assert f"{vms[0].name} was taken out of the selection" in page and 'id="save-jit"' not in page
    assert 'value="203.0.113.0/24"' in page and PolicyChange.objects.count() == 1


@pytest.mark.django_db
def test_bulk_enable_of_a_selection_with_a_vm_gone_meanwhile_keeps_the_edits_and_the_other_vms(
        client, policy_admin, django_capture_on_commit_callbacks):
    """A sync removed one selected VM (deleted in Azure) between the page and its Save: the edits and the other VMs
    stay, the page says one VM left, and Save again enables the others (it sent back to the inventory, all lost)."""
    made = make_many_vms(6)
    kept, gone = not_configured(made[0]), not_configured(made[2])
    client.force_login(policy_admin)
    rows = [{"number": "22", "sources": "203.0.113.0/24"}, {"number": "8443"}]
    data = {**edit_post(kept, rows), "ports-INITIAL_FORMS": "0", "vm": [kept.pk, gone.pk]}
    VirtualMachine.objects.filter(pk=gone.pk).delete()
    response = client.post(reverse("policies:bulk_enable"), data)
    page = response.content.decode()
    assert response.status_code == 400 and not PolicyChange.objects.exists()
    assert "1 selected VM is no longer in the inventory you may see" in page
    assert f'<input type="hidden" name="vm" value="{kept.pk}">' in page and f'name="vm" value="{gone.pk}"' not in page
    assert 'value="203.0.113.0/24"' in page and 'value="8443"' in page  # the edits are still there
    data["vm"] = [kept.pk]
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("policies:bulk_enable"), data).status_code == 302
    assert list(PolicyChange.objects.get().desired) == [kept.arm_id]
    # Opened with a stale selection: the page names what is left, not "select at least one".
    page = client.get(reverse("policies:bulk_enable"), {"vm": [made[4].pk, gone.pk]})
    assert page.status_code == 200 and "1 selected VM is no longer in the inventory" in page.content.decode()


@pytest.mark.django_db
def test_vms_with_jit_being_enabled_or_removed_say_so_and_cannot_be_selected_again(
        client, policy_admin, django_capture_on_commit_callbacks):
    made = make_many_vms(6)  # 0 and 3 Configured, 1 and 4 Not configured
    client.force_login(policy_admin)
    data = {**edit_post(made[1], [{"number": "22"}]), "ports-INITIAL_FORMS": "1", "vm": [made[1].pk]}
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("policies:bulk_enable"), data).status_code == 302
        assert client.post(reverse("policies:vm_remove", kwargs={"pk": made[0].pk})).status_code == 302
    enable, remove = PolicyChange.objects.order_by("pk")

    def row(tab: str, vm: VirtualMachine) -> str:
        page = client.get(reverse("policies:inventory"), {"tab": tab}).content.decode()
        return re.search(rf'<tr data-vm="{vm.name}".*?</tr>', page).group(0)

    detail = reverse("policies:vm_detail", kwargs={"pk": made[1].pk})
    assert f'<a class="pending-change" href="{detail}#change-{enable.pk}"' in row("not_configured", made[1])
    assert "Enabling JIT…" in row("not_configured", made[1]) and 'name="vm"' not in row("not_configured", made[1])
    assert (f'<input type="checkbox" disabled aria-label="Select {made[1].name}" '
            f'aria-describedby="pending-{made[1].pk}">') in row("not_configured", made[1])
    assert f'id="pending-{made[1].pk}"' in row("not_configured", made[1])
    assert "pending-change" not in row("not_configured", made[4])
    assert f'name="vm" value="{made[4].pk}"' in row("not_configured", made[4])
    detail = reverse("policies:vm_detail", kwargs={"pk": made[0].pk})
    assert f'<a class="pending-change" href="{detail}#change-{remove.pk}"' in row("configured", made[0])
    assert "Removing JIT…" in row("configured", made[0]) and 'name="vm"' not in row("configured", made[0])
    assert f'name="vm" value="{made[3].pk}"' in row("configured", made[3])
    assert f'id="change-{enable.pk}"' in client.get(reverse("policies:vm_detail", kwargs={"pk": made[1].pk})
                                                     ).content.decode()  # where the link leads
    # Applied (or failed): the row is as any other again.
    PolicyChange.objects.update(state=PolicyChange.State.FAILED)
    assert "pending-change" not in row("not_configured", made[1])
    assert f'name="vm" value="{made[1].pk}"' in row("not_configured", made[1])


@pytest.mark.django_db
def test_a_forged_selection_of_a_vm_being_enabled_names_it_goes_on_with_the_others_and_queues_nothing_more(
        client, policy_admin, django_capture_on_commit_callbacks):
    made = make_many_vms(6)  # 1 and 4 Not configured
    enabling, free = made[1], made[4]
    client.force_login(policy_admin)
    first = {**edit_post(enabling, [{"number": "22"}]), "ports-INITIAL_FORMS": "1", "vm": [enabling.pk]}
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("policies:bulk_enable"), first).status_code == 302
    # Its row has no select box now; a POST naming it anyway (other ports) is refused for it, the other VM kept.
    forged = {**edit_post(enabling, [{"number": "3389"}]), "ports-INITIAL_FORMS": "1", "vm": [enabling.pk, free.pk]}
    response = client.post(reverse("policies:bulk_enable"), forged)
    page = response.content.decode()
    assert response.status_code == 400 and PolicyChange.objects.count() == 1
    assert (f"{enabling.name} was taken out of the selection: JIT is already being enabled on it (saved, not "
            "applied in Azure yet)") in page
    assert f'<input type="hidden" name="vm" value="{free.pk}">' in page and f'value="{enabling.pk}"' not in page
    assert f"<p>Save to enable JIT with these ports on {free.name}.</p>" in page and 'value="3389"' in page
    assert "There is a problem with this form" in page  # the VM taken out; saving is what to do next, not one
    forged["vm"] = [enabling.pk]  # only that VM: nothing left, nothing queued
    response = client.post(reverse("policies:bulk_enable"), forged)
    assert response.status_code == 400 and "No selected VM is left to enable JIT on." in response.content.decode()
    assert client.get(reverse("policies:bulk_enable"), {"vm": [enabling.pk]}, follow=True).content.decode().count(
        f"{enabling.name} was taken out of the selection: JIT is already being enabled") == 1
    forged["vm"] = [free.pk]  # the rest goes on
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("policies:bulk_enable"), forged).status_code == 302
    assert [list(c.desired) for c in PolicyChange.objects.order_by("pk")] == [[enabling.arm_id], [free.arm_id]]

    # The VM's own page offers no second Enable, and a forged one is refused with the reason.
    detail = reverse("policies:vm_detail", kwargs={"pk": enabling.pk})
    page = client.get(detail).content.decode()
    assert 'id="enable-jit"' not in page and "JIT is already being enabled on this VM" in page
    response = client.post(reverse("policies:vm_enable", kwargs={"pk": enabling.pk}), follow=True)
    assert response.redirect_chain[-1][0] == detail and PolicyChange.objects.count() == 2
    assert f"JIT is already being enabled on {enabling.name}" in response.content.decode()
    # Applied or failed: it may be enabled again.
    PolicyChange.objects.update(state=PolicyChange.State.FAILED)
    assert 'id="enable-jit"' in client.get(detail).content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("policies:vm_enable", kwargs={"pk": enabling.pk}))
    assert PolicyChange.objects.count() == 3


def _edit(client, vm, rows):
    """The JIT settings form of ``vm`` sent with ``rows``, as a browser sends it from the page shown just before."""
    return client.post(reverse("policies:policy_edit", kwargs={"pk": vm.pk}),
                       {**edit_post(vm, rows), "basis": shown_basis(client, vm)})


@pytest.mark.django_db
@pytest.mark.parametrize("meanwhile", ["another admin", "in azure"])
def test_an_edit_form_shown_before_the_ports_changed_is_shown_again_not_saved_over_them(
        client, policy_admin, django_capture_on_commit_callbacks, meanwhile):
    vm = make_vm(IN_RG)
    client.force_login(policy_admin)
    url = reverse("policies:policy_edit", kwargs={"pk": vm.pk})
    shown = _basis(client.get(url))
    if meanwhile == "another admin":  # saves RDP beside SSH (pending: the form starts from it now)
        with django_capture_on_commit_callbacks(execute=False):
            assert _edit(client, vm, [{"number": "22"}, {"number": "3389"}]).status_code == 302
    else:  # a sync brought a port added in Azure itself
        VirtualMachine.objects.filter(pk=vm.pk).update(ports=[*vm.ports, {
            "number": 3389, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}])
    changes = PolicyChange.objects.count()
    vm.refresh_from_db()
    stale = client.post(url, {**edit_post(vm, [{"number": "22", "sources": "10.0.0.0/24"}]), "basis": shown})
    text = stale.content.decode()
    assert stale.status_code == 400 and PolicyChange.objects.count() == changes  # 3389 is not dropped unseen
    assert f"The JIT settings of {vm.name} changed since you opened this page" in text and "3389" in text
    assert 'value="10.0.0.0/24"' in text  # the rows typed are kept
    with django_capture_on_commit_callbacks(execute=False):  # Save again, knowing: applied
        again = client.post(url, {**edit_post(vm, [{"number": "22", "sources": "10.0.0.0/24"}]),
                                  "basis": _basis(stale)})
    assert again.status_code == 302
    assert PolicyChange.objects.order_by("pk").last().desired[vm.arm_id] == [
        {"number": 22, "protocol": "*", "maxRequestAccessDuration": "PT3H",
         "allowedSourceAddressPrefix": "10.0.0.0/24"}]


@pytest.mark.django_db
def test_an_edit_form_shown_before_another_admin_removed_jit_is_shown_again_not_saved_over_the_removal(
        client, policy_admin, django_capture_on_commit_callbacks):
    """Remove JIT saved while an edit page was open: saving that page would set the ports again after the removal,
    undoing it unseen (the basis compared with the VM's old ports, the removal having none to compare)."""
    vm = make_vm(IN_RG)
    client.force_login(policy_admin)
    url = reverse("policies:policy_edit", kwargs={"pk": vm.pk})
    shown = _basis(client.get(url))
    with django_capture_on_commit_callbacks(execute=False):  # another admin removes JIT (pending)
        assert client.post(reverse("policies:vm_remove", kwargs={"pk": vm.pk})).status_code == 302
    stale = client.post(url, {**edit_post(vm, [{"number": "22", "sources": "10.0.0.0/24"}]), "basis": shown})
    text = stale.content.decode()
    assert stale.status_code == 400 and list(PolicyChange.objects.values_list("kind", flat=True)) == ["remove"]
    assert f"The JIT settings of {vm.name} changed since you opened this page" in text
    assert "JIT is being removed from it" in text and 'value="10.0.0.0/24"' in text  # the rows typed are kept
    with django_capture_on_commit_callbacks(execute=False):  # Save again, knowing: JIT set again after the removal
        again = client.post(url, {**edit_post(vm, [{"number": "22", "sources": "10.0.0.0/24"}]),
                                  "basis": _basis(stale)})
    assert again.status_code == 302
    assert list(PolicyChange.objects.order_by("pk").values_list("kind", flat=True)) == ["remove", "save"]


@pytest.mark.django_db
def test_an_edit_form_is_not_called_stale_when_azure_only_spells_its_ports_otherwise(
        client, policy_admin, django_capture_on_commit_callbacks):
    """A sync bringing the same ports in other words (PT180M for PT3H, the sources in another order, one prefix as
    a list) changed nothing the form showed: it saves."""
    vm = make_vm(IN_RG)
    VirtualMachine.objects.filter(pk=vm.pk).update(ports=[{"number": 22, "protocol": "*", "maxRequestAccessDuration":
                                                           "PT3H", "allowedSourceAddressPrefixes": ["10.0.0.0/24",
                                                                                                    "10.1.0.0/24"]}])
    client.force_login(policy_admin)
    url = reverse("policies:policy_edit", kwargs={"pk": vm.pk})
    shown = _basis(client.get(url))
    VirtualMachine.objects.filter(pk=vm.pk).update(ports=[{"number": 22, "protocol": "*", "maxRequestAccessDuration":
                                                           "PT180M", "allowedSourceAddressPrefixes": ["10.1.0.0/24",
                                                                                                      "10.0.0.0/24"]}])
    vm.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False):
        saved = client.post(url, {**edit_post(vm, [{"number": "3389"}]), "basis": shown})
    assert saved.status_code == 302, saved.content.decode()[:2000]


@pytest.mark.django_db
def test_an_edit_form_refused_for_a_typo_after_the_ports_changed_still_says_so_before_saving(client, policy_admin):
    """The page sent back for a mistake keeps the ports its form was first shown with: fixing the mistake and saving
    does not save over a port added meanwhile that the admin was never shown."""
    vm = make_vm(IN_RG)
    client.force_login(policy_admin)
    url = reverse("policies:policy_edit", kwargs={"pk": vm.pk})
    shown = _basis(client.get(url))
    VirtualMachine.objects.filter(pk=vm.pk).update(ports=[*vm.ports, {  # a sync brought a port added in Azure
        "number": 3389, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}])
    vm.refresh_from_db()
    typo = client.post(url, {**edit_post(vm, [{"number": "22", "sources": "10.0.0.0/33"}]), "basis": shown})
    assert typo.status_code == 400 and "changed since you opened" not in typo.content.decode()  # nor 3389 yet
    changes = PolicyChange.objects.count()
    fixed = client.post(url, {**edit_post(vm, [{"number": "22", "sources": "10.0.0.0/24"}]), "basis": _basis(typo)})
    assert fixed.status_code == 400 and PolicyChange.objects.count() == changes  # 3389 is not dropped unseen
    assert f"The JIT settings of {vm.name} changed since you opened this page" in fixed.content.decode()


@pytest.mark.django_db
def test_an_edit_form_sent_without_its_basis_is_shown_again_not_saved(client, policy_admin,
                                                                       django_capture_on_commit_callbacks):
    # A page rendered before the form carried its basis (or a hand-made post) cannot say what it replaces.
    vm = make_vm(IN_RG)
    client.force_login(policy_admin)
    url = reverse("policies:policy_edit", kwargs={"pk": vm.pk})
    sent = client.post(url, edit_post(vm, [{"number": "22", "sources": "10.0.0.0/24"}]))
    text = sent.content.decode()
    assert sent.status_code == 400 and not PolicyChange.objects.exists()
    assert f"This form did not say which JIT settings of {vm.name} it was shown with" in text
    assert "they are now 22 (Any, up to 3 h, from Any)" in text and 'value="10.0.0.0/24"' in text
    with django_capture_on_commit_callbacks(execute=False):  # Save again from the page shown: applied
        again = client.post(url, {**edit_post(vm, [{"number": "22", "sources": "10.0.0.0/24"}]),
                                  "basis": _basis(sent)})
    assert again.status_code == 302 and PolicyChange.objects.count() == 1


@pytest.mark.django_db
def test_the_edit_and_remove_forms_sent_again_while_pending_queue_nothing_more(client, policy_admin):
    vm = make_vm(IN_RG)
    client.force_login(policy_admin)
    for _ in range(2):
        assert _edit(client, vm, [{"number": "22", "sources": "10.0.0.0/24"}]).status_code == 302
    assert PolicyChange.objects.count() == 1
    assert _edit(client, vm, [{"number": "3389"}]).status_code == 302  # other ports: a change of their own
    for _ in range(2):
        assert client.post(reverse("policies:vm_remove", kwargs={"pk": vm.pk})).status_code == 302
    assert list(PolicyChange.objects.order_by("pk").values_list("kind", flat=True)) == ["save", "save", "remove"]


@pytest.mark.django_db
@pytest.mark.parametrize(("rows", "message"), [
    ([{"number": "0"}], "Enter a port number between 1 and 65535."),
    ([{"number": "65536"}], "Enter a port number between 1 and 65535."),
    ([{"number": "22"}, {"number": "22"}], "Port 22 is listed twice."),
    ([{"number": "22", "sources": "10.0.0.300"}], "&#x27;10.0.0.300&#x27; is not an IP address or CIDR prefix."),
    ([{"number": "22", "sources": "2001:db8::/129"}], "is not an IP address or CIDR prefix."),
    ([{"number": "22", "sources": "*, 10.0.0.1"}], "Any (*) cannot be combined with addresses."),
    ([{"number": "22", "max_hours": "0", "max_minutes": "4"}], "between 5 minutes and 24 hours"),
    ([{"number": "22", "max_hours": "24", "max_minutes": "1"}], "between 5 minutes and 24 hours"),
    ([{"number": "22", "protocol": "ICMP"}], "Select a valid choice."),
    ([{"number": "22", "DELETE": "on"}], "Keep at least one port (to take JIT off a VM, use Remove JIT)."),
])
def test_the_edit_form_shows_a_clear_error_for_each_rule(client, policy_admin, rows, message):
    vm = make_vm(IN_RG)
    client.force_login(policy_admin)
    response = _edit(client, vm, rows)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not PolicyChange.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("sources", [" , , ", ";", ""])
def test_allowed_sources_naming_none_are_refused_on_the_field_not_saved_as_any(client, policy_admin, sources):
    vm = make_vm(IN_RG)
    client.force_login(policy_admin)
    rows = [{"number": "22", "sources": "203.0.113.0/24"}, {"number": "3389", "sources": sources, "max_hours": "2"}]
    response = _edit(client, vm, rows)
    page = response.content.decode()
    assert response.status_code == 400
    assert ('<ul class="errorlist" id="id_ports-1-sources_error"><li>Enter one or more IP addresses or ranges, or * '
            'for any source.</li></ul>') in page
    assert 'name="ports-0-sources" value="203.0.113.0/24"' in page  # the typed rows stay as typed
    assert 'name="ports-1-number" value="3389"' in page and 'name="ports-1-max_hours" value="2"' in page
    assert not PolicyChange.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("sources", [" , , ", ""])
def test_enable_jit_refuses_allowed_sources_naming_none(client, policy_admin, sources):
    vm = not_configured(make_many_vms(3)[0])
    client.force_login(policy_admin)
    rows = [{"number": "22", "sources": sources}, {"number": "3389", "sources": "10.0.0.0/8"}]
    data = {**edit_post(vm, rows), "ports-INITIAL_FORMS": "2", "vm": [vm.pk]}
    response = client.post(reverse("policies:bulk_enable"), data)
    page = response.content.decode()
    assert response.status_code == 400
    assert ('<ul class="errorlist" id="id_ports-0-sources_error"><li>Enter one or more IP addresses or ranges, or * '
            'for any source.</li></ul>') in page
    assert 'name="ports-1-sources" value="10.0.0.0/8"' in page
    assert f'<input type="hidden" name="vm" value="{vm.pk}">' in page
    assert not PolicyChange.objects.exists()


@pytest.mark.django_db
def test_editing_again_before_a_saved_change_is_applied_starts_from_that_change_not_azures_old_ports(
        client, policy_admin, django_capture_on_commit_callbacks):
    vm = make_vm(IN_RG)  # port 22 in Azure
    client.force_login(policy_admin)
    with django_capture_on_commit_callbacks(execute=False):
        assert _edit(client, vm, [{"number": "22"}, {"number": "8443", "protocol": "TCP"}]).status_code == 302
    page = client.get(reverse("policies:policy_edit", kwargs={"pk": vm.pk})).content.decode()
    assert 'name="ports-1-number" value="8443"' in page  # the saved port, though Azure does not have it yet
    assert "not applied in Azure yet" in page
    rows = [{"number": "22", "sources": "10.0.0.0/24"}, {"number": "8443", "protocol": "TCP"}]
    data = {**edit_post(vm, rows), "ports-INITIAL_FORMS": "2", "basis": shown_basis(client, vm)}
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("policies:policy_edit", kwargs={"pk": vm.pk}), data).status_code == 302
    latest = PolicyChange.objects.order_by("-pk").first()
    assert [p["number"] for p in latest.desired[vm.arm_id]] == [22, 8443]  # 8443 is not dropped
    PolicyChange.objects.update(state=PolicyChange.State.APPLIED)
    page = client.get(reverse("policies:policy_edit", kwargs={"pk": vm.pk})).content.decode()
    assert "not applied in Azure yet" not in page


@pytest.mark.django_db
@pytest.mark.parametrize(("row", "field", "message"), [
    ({"number": "ssh"}, "number", "Enter a port number between 1 and 65535."),
    ({"number": "\u00b2"}, "number", "Type the port number with the digits 0 to 9."),  # a digit int() cannot read
    ({"number": "\u0663\u0663"}, "number", "Type the port number with the digits 0 to 9."),  # int() reads 33
    ({"number": "\uff13\uff13"}, "number", "Type the port number with the digits 0 to 9."),  # full-width 33
    ({"number": "2\u0662"}, "number", "Type the port number with the digits 0 to 9."),
    ({"max_hours": "\u0663"}, "max_hours", "Type the number with the digits 0 to 9."),
    ({"max_minutes": "\u0663\u0660"}, "max_minutes", "Type the number with the digits 0 to 9."),
    ({"number": "9" * 5000}, "number", "Enter a port number between 1 and 65535."),
    ({"max_hours": "25"}, "max_hours", "The maximum request time must be between 5 minutes and 24 hours."),
    ({"max_hours": "-1"}, "max_hours", "The maximum request time must be between 5 minutes and 24 hours."),
    ({"max_hours": "1.5"}, "max_hours", "Enter whole hours (0 to 24) and minutes (0 to 59)."),
    ({"max_minutes": "90"}, "max_minutes", "Enter whole hours (0 to 24) and minutes (0 to 59)."),
])
def test_a_refused_port_field_says_what_it_takes_and_only_it_is_marked(client, policy_admin, row, field, message):
    vm = make_vm(IN_RG)
    client.force_login(policy_admin)
    response = _edit(client, vm, [{"number": "22", **row}, {"number": "3389"}])
    page = response.content.decode()
    assert response.status_code == 400
    assert f'<ul class="errorlist" id="id_ports-0-{field}_error"><li>{message}</li></ul>' in page
    assert "There is a problem with this form</h2>" in page  # said at the top: a long port list hides a row's error
    label = {"number": "Port", "max_hours": "Max hours", "max_minutes": "Max minutes"}[field]
    assert f'<li><a href="#id_ports-0-{field}">Row 1, {label}: {message}</a></li>' in page  # listed there, linked
    invalid = re.findall(r'<(?:input|select)[^>]*aria-invalid="true"[^>]*id="id_(ports-[^"]+)"', page)
    assert invalid == [f"ports-0-{field}"]
    assert 'class="port-row errors"' not in page  # the admin's CSS would outline every field of the row in red


@pytest.mark.django_db
def test_the_summary_of_a_port_list_counts_its_problems(client, policy_admin):
    vm = make_vm(IN_RG)
    client.force_login(policy_admin)
    page = _edit(client, vm, [{"number": "0"}, {"number": "3389", "max_hours": "x"}]).content.decode()
    summary = re.search(r'id="form-errors" role="alert" tabindex="-1" data-error-summary>(.*?)</div>', page).group(1)
    assert summary.startswith('<h2 class="error-summary-title" id="form-errors-title">There are 2 problems with this '
                              'form</h2>')
    assert re.findall(r'<li><a href="#id_ports-(\d-\w+)">', summary) == ["0-number", "1-max_hours"]


@pytest.mark.django_db
def test_a_port_listed_twice_is_named_once_in_the_summary_as_a_link_to_its_row(client, policy_admin):
    vm = make_vm(IN_RG)
    client.force_login(policy_admin)
    page = _edit(client, vm, [{"number": "22"}, {"number": "3389"}, {"number": "22"}]).content.decode()
    summary = re.search(r'id="form-errors" role="alert" tabindex="-1" data-error-summary>(.*?)</div>', page).group(1)
    assert re.findall(r"<li>(.*?)</li>", summary) == [
        '<a href="#id_ports-2-number">Row 3, Port: Port 22 is listed twice.</a>']


@pytest.mark.django_db
def test_the_edit_form_refuses_a_policy_and_vm_name_over_56_characters(client, policy_admin):
    vm = make_vm(IN_RG)
    VirtualMachine.objects.filter(pk=vm.pk).update(name="v" * 50)
    client.force_login(policy_admin)
    response = _edit(client, vm, [{"number": "22"}])
    assert response.status_code == 400
    assert "are 57 characters together; Azure allows at most 56" in response.content.decode()


@pytest.mark.django_db
def test_the_edit_form_refuses_an_unsupported_vm(client, policy_admin):
    vm = make_vm(IN_RG)
    VirtualMachine.objects.filter(pk=vm.pk).update(state=VmState.UNSUPPORTED, unsupported_reason="classic_vm")
    client.force_login(policy_admin)
    # The page has no form to send (it says why): a post made without it is refused the same.
    response = client.post(reverse("policies:policy_edit", kwargs={"pk": vm.pk}), edit_post(vm, [{"number": "22"}]))
    assert response.status_code == 400 and "does not support JIT" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("cause", ["unsupported", "defender"])
def test_the_edit_page_of_a_vm_jit_cannot_protect_says_why_before_any_port_is_typed(client, policy_admin, cause):
    # It showed the port rows and a Save button, and said the VM could not have JIT only once they were saved.
    vm = make_vm(IN_RG)
    if cause == "unsupported":
        VirtualMachine.objects.filter(pk=vm.pk).update(state=VmState.UNSUPPORTED, unsupported_reason="classic_vm")
        reason = "vm-matrix does not support JIT: Classic VM"
    else:
        Subscription.objects.filter(pk=vm.subscription_id).update(defender_p2=False)
        reason = "JIT unavailable: enable Microsoft Defender for Servers Plan 2"
    client.force_login(policy_admin)
    response = client.get(reverse("policies:policy_edit", args=[vm.pk]))
    page = response.content.decode()
    assert response.status_code == 200 and 'id="jit-unavailable"' in page and reason in page
    assert 'id="policy-form"' not in page and 'id="save-jit"' not in page
    assert f'href="{reverse("policies:vm_detail", args=[vm.pk])}">Back to vm-matrix</a>' in page
    refused = client.post(reverse("policies:policy_edit", args=[vm.pk]), edit_post(vm, [{"number": "22"}]))
    assert refused.status_code == 400 and reason in refused.content.decode()
    assert not PolicyChange.objects.exists()


@pytest.mark.django_db
def test_a_valid_edit_stores_iso_durations_and_both_ip_families(client, policy_admin,
                                                                 django_capture_on_commit_callbacks):
    vm = make_vm(IN_RG)
    client.force_login(policy_admin)
    with django_capture_on_commit_callbacks(execute=False):
        response = _edit(client, vm, [
            {"number": "22", "protocol": "TCP", "sources": "203.0.113.0/24, 2001:db8::1", "max_hours": "2"},
            {"number": "8443", "protocol": "UDP", "sources": "10.1.2.3", "max_hours": "0", "max_minutes": "45"}])
    assert response.status_code == 302
    ports = PolicyChange.objects.get().desired[vm.arm_id]
    assert ports == [
        {"number": 22, "protocol": "TCP", "maxRequestAccessDuration": "PT2H",
         "allowedSourceAddressPrefixes": ["203.0.113.0/24", "2001:db8::1"]},
        {"number": 8443, "protocol": "UDP", "maxRequestAccessDuration": "PT45M",
         "allowedSourceAddressPrefix": "10.1.2.3"},
    ]


@pytest.mark.django_db
def test_a_long_list_of_sources_azure_holds_is_saved_back_when_another_port_is_added(
        client, policy_admin, django_capture_on_commit_callbacks):
    """300 IPv6 ranges on SSH, set in Azure: the page showed them, then refused its own rows (the box took 4,000
    characters), so no port of the VM could be changed in the portal."""
    vm = make_vm(IN_RG)
    held = [f"2001:db8:{i + 1:x}::/48" for i in range(300)]
    VirtualMachine.objects.filter(pk=vm.pk).update(ports=[{"number": 22, "protocol": "*", "maxRequestAccessDuration":
                                                           "PT3H", "allowedSourceAddressPrefixes": held}])
    vm.refresh_from_db()
    client.force_login(policy_admin)
    page = client.get(reverse("policies:policy_edit", kwargs={"pk": vm.pk}))
    shown = page.context["formset"].forms[0]["sources"].value()
    assert len(shown) > 4000
    with django_capture_on_commit_callbacks(execute=False):
        response = _edit(client, vm, [{"number": "22", "sources": shown}, {"number": "3389"}])
    assert response.status_code == 302
    ports = PolicyChange.objects.get().desired[vm.arm_id]
    assert ports[0]["allowedSourceAddressPrefixes"] == held and ports[1]["number"] == 3389


@pytest.mark.django_db
@pytest.mark.parametrize("held", ["PT1.5H", "soon", "P99999999999D", "PT"])
def test_a_duration_azure_holds_that_the_form_cannot_read_is_named_not_a_500(client, policy_admin,
                                                                            django_capture_on_commit_callbacks, held):
    vm = make_vm(IN_RG)
    VirtualMachine.objects.filter(pk=vm.pk).update(ports=[
        {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": held}])
    client.force_login(policy_admin)
    response = client.get(reverse("policies:policy_edit", kwargs={"pk": vm.pk}))
    page = response.content.decode()
    assert response.status_code == 200
    assert f"Azure holds the maximum request time &#x27;{held}&#x27;, which the portal cannot read" in page
    assert 'name="ports-0-max_hours" min="0" max="24" id="id_ports-0-max_hours">' in page  # empty
    vm.refresh_from_db()
    response = _edit(client, vm, [{"number": "22", "max_hours": "", "max_minutes": ""}])
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        assert _edit(client, vm, [{"number": "22", "max_hours": "2", "max_minutes": ""}]).status_code == 302
    assert PolicyChange.objects.get().desired[vm.arm_id][0]["maxRequestAccessDuration"] == "PT2H"


@pytest.mark.django_db
def test_a_duration_with_seconds_is_kept_unless_the_admin_changes_it(client, policy_admin,
                                                                     django_capture_on_commit_callbacks):
    vm = make_vm(IN_RG)
    VirtualMachine.objects.filter(pk=vm.pk).update(ports=[
        {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT5M30S"},
        {"number": 3389, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1H0M45S"}])
    vm.refresh_from_db()
    client.force_login(policy_admin)
    page = client.get(reverse("policies:policy_edit", kwargs={"pk": vm.pk})).content.decode()
    assert "Azure holds PT5M30S: it stays so unless you change the hours or minutes" in page
    with django_capture_on_commit_callbacks(execute=False):
        response = _edit(client, vm, [{"number": "22", "sources": "10.0.0.1", "max_hours": "0", "max_minutes": "5"},
                                      {"number": "3389", "max_hours": "2", "max_minutes": "0"}])
    assert response.status_code == 302
    ports = {p["number"]: p for p in PolicyChange.objects.get().desired[vm.arm_id]}
    assert ports[22]["maxRequestAccessDuration"] == "PT5M30S" and ports[22]["allowedSourceAddressPrefix"] == "10.0.0.1"
    assert ports[3389]["maxRequestAccessDuration"] == "PT2H"


@pytest.mark.django_db
def test_the_edit_form_matches_rows_to_ports_by_number_when_a_sync_reordered_them(
        client, policy_admin, django_capture_on_commit_callbacks):
    def port(number: int, duration: str) -> dict:
        return {"number": number, "protocol": "*", "allowedSourceAddressPrefix": "*",
                "maxRequestAccessDuration": duration}

    vm = make_vm(IN_RG)
    held = [port(22, "PT1H10S"), port(3389, "PT1H45S"), port(5985, "PT5M30S"), port(5986, "PT3H")]
    VirtualMachine.objects.filter(pk=vm.pk).update(ports=held)
    client.force_login(policy_admin)
    page = client.get(reverse("policies:policy_edit", kwargs={"pk": vm.pk})).content.decode()
    assert 'name="ports-0-number" value="22"' in page and 'name="ports-2-number" value="5985"' in page
    # A sync stores them in another order before the admin saves.
    VirtualMachine.objects.filter(pk=vm.pk).update(ports=[held[1], held[0], held[3], held[2]])
    vm.refresh_from_db()
    rows = [{"number": "22", "max_hours": "1"}, {"number": "3389", "max_hours": "1"},  # as the form showed them
            {"number": "5985", "max_hours": "0", "max_minutes": "5"}, {"number": "5986", "sources": "10.0.0.1"}]
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("policies:policy_edit", kwargs={"pk": vm.pk}),
                               {**edit_post(vm, rows), "ports-INITIAL_FORMS": "4", "basis": shown_basis(client, vm)})
    assert response.status_code == 302
    ports = {p["number"]: p["maxRequestAccessDuration"] for p in PolicyChange.objects.get().desired[vm.arm_id]}
    assert ports == {22: "PT1H10S", 3389: "PT1H45S", 5985: "PT5M30S", 5986: "PT3H"}  # each its own, seconds kept
    # Refused, the form shows each row as it was sent: a row whose number was changed can still be removed.
    rows[0]["number"], rows[3]["sources"] = "2222", "10.0.0.300"
    page = client.post(reverse("policies:policy_edit", kwargs={"pk": vm.pk}),
                       {**edit_post(vm, rows), "ports-INITIAL_FORMS": "4", "basis": shown_basis(client, vm)}
                       ).content.decode()
    assert re.findall(r"Remove port (\d+)", page) == ["2222", "3389", "5985", "5986"]
    assert 'id="id_ports-0-DELETE"' in page and page.count("<em>new port</em>") == 1  # the template's only


@pytest.mark.django_db
def test_the_change_status_shows_azures_message_when_it_failed(client, policy_admin):
    from tests.policies.factories import make_policy_change

    change = make_policy_change(IN_RG)
    PolicyChange.objects.filter(pk=change.pk).update(state=PolicyChange.State.FAILED,
                                                     last_error="LocationMismatch: the VM is elsewhere")
    client.force_login(policy_admin)
    page = client.get(reverse("policies:change_status", kwargs={"pk": change.pk})).content.decode()
    assert "Failed" in page and "LocationMismatch: the VM is elsewhere" in page


@pytest.mark.django_db
def test_remove_jit_asks_first_naming_open_access_and_a_vm_without_jit_has_nothing_to_remove(client, policy_admin):
    from tests.policies.access.factories import make_access_request

    request = make_access_request(IN_RG)
    vm = request.vms.get().vm
    client.force_login(policy_admin)
    page = client.get(reverse("policies:vm_remove", args=[vm.pk])).content.decode()
    assert f"Remove just-in-time access from {vm.name}?" in page
    assert f"Open now, and ended by this: {request.requester_name} (port 22)." in page
    bare = not_configured(make_vm(IN_RG))
    response = client.get(reverse("policies:vm_remove", args=[bare.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("policies:vm_detail", args=[bare.pk])
    assert f"{bare.name} has no JIT policy to remove." in response.content.decode()
    assert not PolicyChange.objects.exists()


@pytest.mark.django_db
def test_bulk_enable_with_an_id_beyond_any_row_is_a_clear_error_not_a_crash(client, policy_admin):
    vm = not_configured(make_many_vms(3)[1])
    client.force_login(policy_admin)
    for method in (client.get, client.post):
        response = method(reverse("policies:bulk_enable"), {"vm": [vm.pk, "99999999999999999999999"]}, follow=True)
        assert response.status_code == 200
        assert "Select at least one Not configured VM you may configure." in response.content.decode()
    assert not PolicyChange.objects.exists()


@pytest.mark.django_db
def test_every_field_of_the_port_rows_has_a_label(client, policy_admin):
    import re

    vm = make_vm(IN_RG)
    client.force_login(policy_admin)
    page = client.get(reverse("policies:policy_edit", kwargs={"pk": vm.pk})).content.decode()
    fields = [f for tag, f in re.findall(r'(<(?:input|select)[^>]*\bid="(id_ports-[^"]+)")', page)
              if 'type="hidden"' not in tag]
    assert "id_ports-0-number" in fields and "id_ports-0-DELETE" in fields and "id_ports-__prefix__-sources" in fields
    unlabelled = [f for f in fields if f'<label for="{f}"' not in page]
    assert not unlabelled


@pytest.mark.django_db
def test_a_filter_value_that_is_not_a_choice_says_it_was_left_out(client, policy_admin):
    make_many_vms(6)
    client.force_login(policy_admin)
    page = client.get(reverse("policies:inventory"), {"resource_group": "rg-<gone>"}).content.decode()
    assert ('<a href="#id_resource_group">Resource group: Select a valid choice. rg-&lt;gone&gt; is not one of the '
            'available choices.</a> The filter was left out.') in page  # a link to the filter's control
    # The refused filter's control is marked and points to its message (screen readers announce it there).
    assert '<select name="resource_group" id="id_resource_group" aria-invalid="true" ' \
           'aria-describedby="id_resource_group_error">' in page
    assert '<li id="id_resource_group_error">' in page and '<select name="os" id="id_os">' in page


@pytest.mark.django_db
def test_a_search_longer_than_any_name_is_refused_in_words_not_a_crash(client, policy_admin):
    """SQLite refuses a LIKE pattern over 50,000 bytes ("pattern too complex"): a search that long was a 500 on the
    inventory and on Enable JIT for all that match (a POST, which no server's URL limit stops)."""
    make_many_vms(3)
    client.force_login(policy_admin)
    long = "a" * 60_000
    page = client.get(reverse("policies:inventory"), {"q": long})
    assert page.status_code == 200
    assert "Search: Ensure this value has at most 200 characters (it has 60000).</a> The filter was left out." \
        in page.content.decode()
    response = client.post(reverse("policies:bulk_enable"), {"all": "1", "q": long, "selection": "x"})
    assert response.status_code == 302
    assert any("Correct the inventory's filter" in str(m) for m in get_messages(response.wsgi_request))


@pytest.mark.django_db
def test_the_inventory_rows_escape_what_azure_or_a_user_named(client, policy_admin):
    vm = make_vm(IN_RG)
    hostile = '<img src=x onerror="alert(1)">'
    short = "<b>os</b>"  # the OS column holds 16 characters (PostgreSQL enforces it)
    VirtualMachine.objects.filter(pk=vm.pk).update(name=f"vm{hostile}", location=hostile, os_type=short,
                                                   private_ip=hostile, last_user=hostile)
    vm.subscription.display_name = hostile
    vm.subscription.save(update_fields=["display_name"])
    client.force_login(policy_admin)
    page = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    assert hostile not in page and short not in page  # rows rendered in Python and marked safe: all escaped
    assert page.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;") >= 5 and "&lt;b&gt;os&lt;/b&gt;" in page


@pytest.mark.django_db
def test_the_help_and_errors_the_port_fields_point_to_exist(client, policy_admin):
    import re

    def missing(page: str) -> list[str]:
        return [target for targets in re.findall(r'aria-describedby="([^"]+)"', page) for target in targets.split()
                if f'id="{target}"' not in page]

    vm = make_vm(IN_RG)
    bare = not_configured(make_vm(IN_RG))
    client.force_login(policy_admin)
    edit = client.get(reverse("policies:policy_edit", kwargs={"pk": vm.pk})).content.decode()
    assert 'aria-describedby="id_ports-0-sources_helptext"' in edit and not missing(edit)
    refused = _edit(client, vm, [{"number": "22", "sources": "10.0.0.300"}]).content.decode()
    assert 'id_ports-0-sources_error' in refused and not missing(refused)
    bulk = client.get(reverse("policies:bulk_enable"), {"vm": [bare.pk]}).content.decode()
    assert "aria-describedby" in bulk and not missing(bulk)


@pytest.mark.django_db
def test_the_inventory_and_the_vm_page_show_the_last_access_in_the_portals_time_zone(client, policy_admin, settings):
    from datetime import UTC, datetime

    settings.TIME_ZONE = "Europe/Amsterdam"  # UTC+1 in November
    vm = make_vm(IN_RG)
    VirtualMachine.objects.filter(pk=vm.pk).update(last_access_at=datetime(2026, 11, 20, 9, 30, tzinfo=UTC))
    client.force_login(policy_admin)
    listing = client.get(reverse("policies:inventory")).content.decode()
    detail = client.get(reverse("policies:vm_detail", args=[vm.pk])).content.decode()
    assert "2026-11-20 10:30" in listing and "2026-11-20 10:30" in detail
    assert "2026-11-20 09:30" not in listing


@pytest.mark.django_db
def test_the_connection_icons_are_hidden_from_screen_readers_and_search_icons_use_static(
        client, prod, policy_admin, auditor, settings):
    client.force_login(policy_admin)
    page = client.get(reverse("policies:inventory"), {"tab": "configured"}).content.decode()
    # Drawn inline, not emoji (an empty box without an emoji font), and read as "Firewall", not "fire Firewall".
    icon = r'<svg class="conn-icon" aria-hidden="true" focusable="false" width="14" height="14" viewBox="0 0 16 16" ' \
        r'fill="currentColor"><path d="[^"]+"/></svg>'
    for kind, name, label in (("firewall", "Azure Firewall", "Firewall"), ("nsg", "Network security group", "NSG")):
        assert re.search(rf'<span class="conn conn-{kind}" title="{name}">{icon} {label}</span>', page), kind
    assert "&#x1F" not in page and "\U0001f525" not in page and "\U0001f6e1" not in page
    assert not re.search(r"<svg[^>]*\sstyle=", page)  # the CSP allows no inline style: sized by .conn-icon
    from django.contrib.staticfiles import finders
    with open(finders.find("policies/policies.css"), encoding="utf-8") as css:
        assert re.search(r"\.conn-icon \{ width: 1em; height: 1em;", css.read())
    client.force_login(auditor)
    settings.STATIC_URL = "/assets/"  # served under another prefix: the search icon follows it
    assert '<img src="/assets/admin/img/search.svg" alt="Search">' in client.get(
        reverse("audit:search")).content.decode()


@pytest.mark.django_db
def test_the_inventory_follows_the_changes_pending_on_its_page_until_azure_applies_or_refuses_them(
        client, policy_admin, django_capture_on_commit_callbacks):
    made = make_many_vms(6)  # 1 and 4 Not configured (in two policies: one change each)
    client.force_login(policy_admin)
    data = {**edit_post(made[1], [{"number": "22"}]), "ports-INITIAL_FORMS": "1", "vm": [made[1].pk, made[4].pk]}
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("policies:bulk_enable"), data).status_code == 302
    changes = {vm.name: vm.changes.get() for vm in (made[1], made[4])}

    page = client.get(reverse("policies:inventory"), {"tab": "not_configured"}).content.decode()
    region = re.search(r'<div id="pending-changes" class="pending-changes" role="status">.*?</div>', page, re.S)
    assert region, "the page names the changes it shows as pending"
    for name, change in changes.items():
        status = reverse("policies:change_status", kwargs={"pk": change.pk})
        line = re.search(rf"<li><strong>{name}</strong>: .*?</li>", region.group(0), re.S)
        assert line and f'hx-get="{status}" hx-trigger="every 2s"' in line.group(0)  # it follows the change itself

    failed = changes[made[1].name]
    PolicyChange.objects.filter(pk=failed.pk).update(state=PolicyChange.State.FAILED, last_error="Azure said <no>")
    answer = client.get(reverse("policies:change_status", kwargs={"pk": failed.pk})).content.decode()
    assert "Failed" in answer and "Azure said &lt;no&gt;" in answer and "hx-get" not in answer  # and stops there
    PolicyChange.objects.update(state=PolicyChange.State.APPLIED)
    assert 'id="pending-changes"' not in client.get(reverse("policies:inventory"),
                                                     {"tab": "not_configured"}).content.decode()


@pytest.mark.django_db
def test_after_enable_jit_the_inventory_follows_every_change_of_the_save_to_its_end_whatever_page_its_vms_are_on(
        client, policy_admin, django_capture_on_commit_callbacks):
    made = make_many_vms(6)  # 1 and 4 Not configured (in two policies: one change each)
    client.force_login(policy_admin)
    data = {**edit_post(made[1], [{"number": "22"}]), "ports-INITIAL_FORMS": "1", "vm": [made[1].pk, made[4].pk],
            "back": "tab=not_configured&per_page=1"}  # the page shows one of the two VMs
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("policies:bulk_enable"), data)
    changes = {vm.name: vm.changes.get() for vm in (made[1], made[4])}
    PolicyChange.objects.filter(pk=changes[made[1].name].pk).update(state=PolicyChange.State.APPLIED)
    PolicyChange.objects.filter(pk=changes[made[4].name].pk).update(state=PolicyChange.State.FAILED,
                                                                    last_error="AuthorizationFailed: <no>")

    page = client.get(response["Location"]).content.decode()
    region = re.search(r'<div id="saved-changes" class="pending-changes" role="status">.*?</div>', page, re.S)
    assert region, "the page lists the changes of the save, done or not"
    assert "2 policy changes" in region.group(0)
    applied = re.search(rf"<li><strong>{made[1].name}</strong>: .*?</li>", region.group(0), re.S).group(0)
    failed = re.search(rf"<li><strong>{made[4].name}</strong>: .*?</li>", region.group(0), re.S).group(0)
    assert "Applied" in applied and "Failed" in failed and "AuthorizationFailed: &lt;no&gt;" in failed
    # Ids it did not make, or not ids, show nothing; many VMs are counted past the first names.
    for saved in ("abc,-1,99999999999999999999999", "999999"):
        assert 'id="saved-changes"' not in client.get(reverse("policies:inventory"),
                                                      {"tab": "not_configured", "saved": saved}).content.decode()
    many = make_many_vms(30, group="rg-many")
    PolicyChange.objects.get(pk=changes[made[4].name].pk).vms.add(*many)
    page = client.get(response["Location"]).content.decode()
    assert "<li><strong>vm-00000, vm-00001, vm-00002, vm-00003, vm-00004, vm-00004, vm-00005, vm-00006 and 23 more" \
           "</strong>" in page  # its 31 VMs, by name


@pytest.mark.django_db
def test_a_reader_of_one_vm_follows_a_change_that_also_covered_others_seeing_only_what_concerns_their_vm(
        client, policy_admin, requester):
    from accounts import services as account_services
    from accounts.models import RoleMapping
    from tests.plugins.personas import Persona

    web_01, web_02 = make_vm(IN_RG, "web-01"), make_vm(IN_RG, "web-02")
    RoleMapping.objects.create(source_kind=RoleMapping.SourceKind.APP_ROLE, source_value="JIT.Web01Reader",
                               role="reader", scope=web_01.arm_id)
    reader = account_services.user_sign_in_record(claims=Persona(
        "rita@contoso.example", "8a0e7c31-0000-4000-8000-000000000078", "Rita Reader", ["JIT.Web01Reader"]).claims())
    change = PolicyChange.objects.create(
        kind=PolicyChange.Kind.SAVE, subscription=web_01.subscription, subscription_key=web_01.subscription_key,
        resource_group=web_01.resource_group, resource_group_name=web_01.resource_group_name, location="westeurope",
        policy_id=web_01.policy_id.lower(), desired={web_01.arm_id: [], web_02.arm_id: []})
    change.vms.set([web_01, web_02])
    status = reverse("policies:change_status", kwargs={"pk": change.pk})
    client.force_login(reader)
    detail = client.get(reverse("policies:vm_detail", kwargs={"pk": web_01.pk})).content.decode()
    assert f'hx-get="{status}" hx-trigger="every 2s"' in detail  # its VM page polls the change ...
    answer = client.get(status)
    assert answer.status_code == 200 and "hx-get" in answer.content.decode()  # ... and is answered while pending
    assert "also covers 1 VM outside your scope" in answer.content.decode()

    PolicyChange.objects.filter(pk=change.pk).update(
        state=PolicyChange.State.QUEUED, last_error=f"Retrying: ServerError: {web_02.arm_id} port 3389 timed out")
    retrying = client.get(status).content.decode()
    assert "Retrying: Azure&#x27;s message (ServerError) is withheld" in retrying
    assert "web-02" not in retrying and not names(retrying, "3389")

    error = f"InvalidPortNumber: virtual machine {web_02.arm_id}: port 3389 is configured twice."
    PolicyChange.objects.filter(pk=change.pk).update(state=PolicyChange.State.FAILED, last_error=error)
    for page in (client.get(status).content.decode(),
                 client.get(reverse("policies:vm_detail", kwargs={"pk": web_01.pk})).content.decode()):
        assert "Failed" in page and "Azure&#x27;s message (InvalidPortNumber) is withheld" in page
        assert "web-02" not in page and not names(page, "3389")
    assert "hx-get" not in client.get(status).content.decode()  # final: the polling stops

    PolicyChange.objects.filter(pk=change.pk).update(
        state=PolicyChange.State.APPLIED,
        last_error="web-01 kept the newer change #98, applied first; web-02 kept the newer change #99, applied first")
    applied = client.get(status).content.decode()
    assert "web-01 kept the newer change #98" in applied
    assert "1 note about VMs outside your scope withheld" in applied
    assert "web-02" not in applied and "hx-get" not in applied

    client.force_login(requester)  # VM read over the subscription, without JIT policy read: may follow it too
    assert "web-02 kept the newer change #99" in client.get(status).content.decode()
    client.force_login(policy_admin)
    PolicyChange.objects.filter(pk=change.pk).update(state=PolicyChange.State.FAILED, last_error=error)
    assert web_02.arm_id in client.get(status).content.decode()  # a reader of the whole policy sees Azure's message
    alone = make_vm(IN_RG, "web-03")
    other = PolicyChange.objects.create(
        kind=PolicyChange.Kind.SAVE, subscription=alone.subscription, subscription_key=alone.subscription_key,
        resource_group=alone.resource_group, resource_group_name=alone.resource_group_name, location="westeurope",
        policy_id=alone.policy_id.lower(), desired={alone.arm_id: []})
    other.vms.set([alone])
    client.force_login(reader)
    assert client.get(reverse("policies:change_status", kwargs={"pk": other.pk})).status_code == 404  # none of theirs


@pytest.mark.django_db
def test_enabling_editing_removing_jit_and_accepting_drift_record_the_clients_address(client, policy_admin, settings):
    """The trail names where each JIT change was asked from, behind a trusted proxy the client's, as for the
    other audit rows; the change keeps it for the rows its worker writes later."""
    from audit.models import AuditEvent

    settings.ACCESS_TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxied = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.9"}
    client.force_login(policy_admin)
    configured = make_vm(IN_RG)
    now = timezone.now()
    DriftFinding.objects.create(vm=configured, kind=DriftFinding.Kind.POLICY_CHANGED, key="policy",
                                detail="Azure now has: …", first_seen=now, last_seen=now)
    shown = client.get(reverse("policies:vm_detail", args=[configured.pk]))  # its drift form's basis, as Azure has it
    assert client.post(reverse("policies:policy_edit", kwargs={"pk": configured.pk}),
                       {**edit_post(configured, [{"number": "2222"}]), "basis": shown_basis(client, configured)},
                       **proxied).status_code == 302
    assert client.post(reverse("policies:drift_accept", args=[configured.pk]), {"basis": _basis(shown)},
                       **proxied).status_code == 302
    bare = not_configured(make_vm(IN_RG, "vm-bare"))
    assert client.post(reverse("policies:vm_enable", args=[bare.pk]), **proxied).status_code == 302
    other = not_configured(make_vm(IN_RG, "vm-other"))
    assert client.post(reverse("policies:bulk_enable"), {**edit_post(other, [{"number": "22"}]), "vm": [other.pk]},
                       **proxied).status_code == 302
    removed = make_vm(IN_RG, "vm-gone")
    assert client.post(reverse("policies:vm_remove", args=[removed.pk]), **proxied).status_code == 302
    rows = AuditEvent.objects.filter(action__startswith="policy.")
    assert sorted(rows.values_list("action", flat=True)) == [
        "policy.drift_accepted", "policy.enable_requested", "policy.enable_requested", "policy.remove_requested",
        "policy.save_requested"]
    assert set(rows.values_list("client_ip", flat=True)) == {"203.0.113.9"}
    assert set(PolicyChange.objects.values_list("client_ip", flat=True)) == {"203.0.113.9"}


@pytest.mark.django_db
def test_the_inventory_says_a_first_sync_is_running_rather_than_that_no_vm_matches(client, policy_admin):
    """Registered, its first sync not finished: the tabs are empty because nothing is stored yet, and the page says
    so; once a sync has finished (even failed, which its status line explains), an empty tab means none matches."""
    from django.utils import timezone

    from tests.policies.factories import make_subscription

    subscription = make_subscription(IN_RG)
    Subscription.objects.filter(pk=subscription.pk).update(display_name="Contoso Production", last_sync_at=None)
    client.force_login(policy_admin)
    page = client.get(reverse("policies:inventory")).content.decode()
    assert ("The first sync of Contoso Production has not finished: its VMs are listed as they are stored, some at a "
            "time.") in page
    assert "a subscription&#x27;s first sync is still running" in page and "No virtual machines match." not in page
    Subscription.objects.filter(pk=subscription.pk).update(last_sync_at=timezone.now())
    page = client.get(reverse("policies:inventory")).content.decode()
    assert "first sync" not in page and "No VM has JIT enabled yet." in page


def row_menu(page: str, vm: VirtualMachine) -> dict[str, str]:
    """The inventory row menu of ``vm``: each item's label and the path it opens."""
    row = re.search(rf'<tr data-vm="{vm.name}".*?</tr>', page, re.DOTALL).group(0)
    menu = re.search(r'<details class="row-menu">.*?</details>', row, re.DOTALL).group(0)
    return {label: href.replace("&amp;", "&").split("?")[0]
            for href, label in re.findall(r'<li><a href="([^"]+)">([^<]+)</a></li>', menu)}


@pytest.mark.django_db
def test_the_row_menu_offers_connect_only_where_jit_is_enabled_and_enable_jit_where_it_is_not(
        client, requester, policy_admin):
    """A Not configured VM's menu offered Connect, whose page then said JIT is not enabled: now its menu has no
    Connect, and a policy admin's has "Enable JIT with custom settings…" (the JIT settings page, its ports to review)
    in place of Edit, named as on the VM's page."""
    configured = make_vm(IN_RG, "vm-configured")
    bare = not_configured(make_vm(IN_RG, "vm-bare"))
    url = {(vm, view): reverse(f"policies:{view}", args=[vm.pk]) for vm in (configured, bare)
           for view in ("vm_detail", "policy_edit", "connect")}
    activity = reverse("audit:search")

    def menus(tab: str) -> str:
        return client.get(reverse("policies:inventory"), {"tab": tab}).content.decode()

    client.force_login(requester)
    assert row_menu(menus("configured"), configured) == {"Details": url[configured, "vm_detail"],
                                                         "Connect": url[configured, "connect"]}
    assert row_menu(menus("not_configured"), bare) == {"Details": url[bare, "vm_detail"]}
    client.force_login(policy_admin)  # may configure, and may request (the seed's read role includes initiate)
    assert row_menu(menus("configured"), configured) == {
        "Details": url[configured, "vm_detail"], "Edit": url[configured, "policy_edit"], "Activity log": activity,
        "Connect": url[configured, "connect"]}
    assert row_menu(menus("not_configured"), bare) == {
        "Details": url[bare, "vm_detail"], "Enable JIT with custom settings…": url[bare, "policy_edit"],
        "Activity log": activity}
    # Configured in the portal's record but with no policy or port left to ask for: no Connect either.
    VirtualMachine.objects.filter(pk=configured.pk).update(ports=[])
    assert "Connect" not in row_menu(menus("configured"), configured)


@pytest.mark.django_db
def test_the_vm_page_offers_connect_only_where_jit_is_enabled_and_the_connect_page_still_says_why(
        client, requester, policy_admin):
    configured = make_vm(IN_RG, "vm-configured")
    bare = not_configured(make_vm(IN_RG, "vm-bare"))
    for user in (requester, policy_admin):
        client.force_login(user)
        page = client.get(reverse("policies:vm_detail", args=[configured.pk])).content.decode()
        assert f'<a id="connect" href="{reverse("policies:connect", args=[configured.pk])}">Connect</a>' in page
        page = client.get(reverse("policies:vm_detail", args=[bare.pk])).content.decode()
        assert 'id="connect"' not in page and reverse("policies:connect", args=[bare.pk]) not in page
        assert ('id="edit-jit"' in page) == (user == policy_admin)
        if user == policy_admin:  # the settings page and the one-click default, each named for what it does
            edit = reverse("policies:policy_edit", args=[bare.pk])
            assert f'<a id="edit-jit" href="{edit}">Enable JIT with custom settings…</a>' in page
            assert '<button type="submit" id="enable-jit" class="button default">Enable JIT</button>' in page
            assert "Configure JIT" not in page
        # Opened directly (a bookmark, a link from elsewhere), the Connect page still says JIT is not enabled.
        response = client.get(reverse("policies:connect", args=[bare.pk]))
        assert response.status_code == 200
        assert "Just-in-time access is not enabled on this VM." in response.content.decode()
    VirtualMachine.objects.filter(pk=configured.pk).update(ports=[])
    assert 'id="connect"' not in client.get(reverse("policies:vm_detail", args=[configured.pk])).content.decode()


@pytest.mark.django_db
def test_sync_now_says_how_many_subscriptions_it_syncs_in_plain_words(client, policy_admin,
                                                                       django_capture_on_commit_callbacks):
    make_vm(IN_RG)
    client.force_login(policy_admin)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("policies:sync_now"))
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Syncing 1 subscription from Azure."]


@pytest.mark.django_db
def test_an_empty_tab_says_why_and_what_to_do_next(client, policy_admin, requester):
    from django.utils import timezone

    make_vm(IN_RG, "web-77")  # configured
    Subscription.objects.update(last_sync_at=timezone.now())  # synced: an empty tab is not a first sync running
    client.force_login(policy_admin)
    inventory = reverse("policies:inventory")

    def empty_row(query: dict) -> str:
        page = client.get(inventory, query).content.decode()
        return re.search(r'<tbody>\s*<tr><td colspan="\d+">(.*?)</td></tr>', page, re.S).group(1)

    assert empty_row({"tab": "not_configured"}) == (
        "No VM is waiting for JIT: every VM here that supports it has JIT enabled (the Configured tab).")
    assert empty_row({"tab": "unsupported"}) == "No unsupported VMs: every VM here can have JIT."
    filtered = ("No virtual machines on this tab match the search or filters. The other tabs&#x27; counts show where "
                "the matching ones are; or clear all filters.")
    assert empty_row({"tab": "configured", "q": "nothing-like-this"}) == filtered
    assert empty_row({"tab": "configured", "os": "Windows"}) == filtered

    VirtualMachine.objects.update(state=VmState.NOT_CONFIGURED, ports=[], policy_name="")
    assert empty_row({"tab": "configured"}) == (
        "No VM has JIT enabled yet. Select VMs on the Not configured tab and choose Enable JIT on selected VMs.")
    client.force_login(requester)
    assert empty_row({"tab": "configured"}) == (
        "No VM has JIT enabled yet. A JIT policy admin enables it on the VMs that support it (the Not configured "
        "tab).")


@pytest.mark.django_db
def test_a_not_configured_vm_page_tells_a_requester_who_enables_jit_and_an_admin_gets_the_button(
        client, requester, policy_admin):
    vm = not_configured(make_vm(IN_RG))
    url = reverse("policies:vm_detail", kwargs={"pk": vm.pk})
    client.force_login(requester)
    page = client.get(url).content.decode()
    assert "JIT is not enabled on this VM." in page and 'id="enable-jit"' not in page
    assert ('<p id="ask-admin" class="help">Access to it cannot be requested until a JIT policy admin enables JIT '
            'on it.</p>') in page
    client.force_login(policy_admin)
    page = client.get(url).content.decode()
    assert 'id="enable-jit"' in page and 'id="ask-admin"' not in page


@pytest.mark.django_db
def test_the_jit_vm_access_configuration_page_has_one_name_from_button_to_heading(client, policy_admin):
    """The button said "Edit JIT", the breadcrumb "JIT settings" and the heading "JIT VM access configuration"."""
    vm = make_vm(IN_RG, "vm-named")  # Configured
    client.force_login(policy_admin)
    edit = reverse("policies:policy_edit", args=[vm.pk])
    detail = client.get(reverse("policies:vm_detail", args=[vm.pk])).content.decode()
    assert f'<a id="edit-jit" href="{edit}">Edit JIT VM access configuration</a>' in detail
    page = client.get(edit).content.decode()
    assert f"<title>JIT VM access configuration: {vm.name} |" in page
    assert f"<h1>JIT VM access configuration: {vm.name}</h1>" in page
    crumbs = re.search(r'<div class="breadcrumbs">(.*?)</div>', page, re.S).group(1)
    assert crumbs.rstrip().endswith("&rsaquo; JIT VM access configuration")
    assert "JIT settings" not in crumbs + re.search(r"<title>.*?</title>", page, re.S).group(0)
    assert ">Edit JIT<" not in detail
