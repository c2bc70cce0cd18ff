"""Azure's limit "policy name + VM name ≤ 56 characters": a VM whose name is too long for the JIT policy the portal
would put it in is left out of a bulk Enable JIT, named, not a save refused whole; its own page says why and what
to do; a policy of its resource group and location whose name fits takes it.

No cloud call happens here: changes are only queued (tasks are captured, not run).
"""
from __future__ import annotations

import html
import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from policies import rules, selectors, services
from policies.models import JitPolicy, PolicyChange, VirtualMachine
from tests.policies.factories import PROD, make_many_vms
from tests.policies.test_select_all_matching import enable_post

LONG = "vm-" + "x" * 47  # 50 characters: one too many with "default"


def _named(vm: VirtualMachine, name: str) -> VirtualMachine:
    VirtualMachine.objects.filter(pk=vm.pk).update(name=name)
    vm.refresh_from_db()
    return vm


def _policy(name: str, group: str = "rg-bulk", location: str = "westeurope") -> JitPolicy:
    return JitPolicy.objects.create(
        subscription=VirtualMachine.objects.filter(resource_group=group).first().subscription, subscription_key=PROD,
        resource_id=(f"/subscriptions/{PROD}/resourcegroups/{group}/providers/microsoft.security/locations/"
                     f"{location}/jitnetworkaccesspolicies/{name}"),
        resource_group=group, resource_group_name=group, location=location, name=name)


@pytest.fixture
def vms(db):
    """Four Not configured VMs (indices 1, 4, 7, 10 of ``make_many_vms``), the second named too long."""
    made = make_many_vms(12)
    short, long, other, last = (made[i] for i in (1, 4, 7, 10))
    return short, _named(long, LONG), other, last


@pytest.mark.django_db
def test_bulk_enable_of_ticked_vms_leaves_out_one_named_too_long_and_saves_the_others(
        client, policy_admin, vms, django_capture_on_commit_callbacks):
    short, long, other, _last = vms
    client.force_login(policy_admin)
    page = client.get(reverse("policies:bulk_enable"), {"vm": [short.pk, long.pk, other.pk]})
    text = html.unescape(page.content.decode())
    assert page.status_code == 200
    assert (f"{LONG} was taken out of the selection: its name (50 characters) and the JIT policy name 'default' "
            "are 57 characters together; Azure allows at most 56.") in text
    assert "a policy name of at most 6 characters" in text
    assert f'name="vm" value="{long.pk}"' not in text and f'name="vm" value="{short.pk}"' in text
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("policies:bulk_enable"), enable_post(page)).status_code == 302
    assert set(PolicyChange.vms.through.objects.values_list("virtualmachine_id", flat=True)) == {short.pk, other.pk}
    # Sent with the VM anyway (a page from before): named, the edits kept, nothing refused whole.
    data = enable_post(page, vm=[str(short.pk), str(long.pk)])
    response = client.post(reverse("policies:bulk_enable"), data)
    assert response.status_code == 400 and f"{LONG} was taken out of the selection" in response.content.decode()


@pytest.mark.django_db
def test_the_inventory_row_of_a_vm_named_too_long_has_a_disabled_box_that_says_why(client, policy_admin, vms):
    """Its box was selectable, the VM left out only once the Enable JIT page opened: now the box is disabled and
    described by the reason beside its name; its page (and Enable JIT with custom settings) still say what to do."""
    short, long, *_rest = vms
    client.force_login(policy_admin)

    def row(vm: VirtualMachine) -> str:
        page = client.get(reverse("policies:inventory"), {"tab": "not_configured"}).content.decode()
        return re.search(rf'<tr data-vm="{vm.name}".*?</tr>', page).group(0)

    shown = row(long)
    assert 'name="vm"' not in shown
    assert (f'<input type="checkbox" disabled aria-label="Select {LONG}" aria-describedby="too-long-{long.pk}">'
            in shown)
    reason = re.search(rf'<span class="too-long-flag" id="too-long-{long.pk}">(.*?)</span>', shown).group(1)
    assert html.unescape(reason) == ("Cannot be selected: its name and the JIT policy name 'default' are 57 "
                                     "characters together (Azure allows 56); its page says what to do.")
    assert f'name="vm" value="{short.pk}" form="bulk-enable"' in row(short) and "too-long" not in row(short)
    # Its own page, and the row menu's Enable JIT with custom settings…, lead on to a policy name that fits.
    detail, edit = (reverse(f"policies:{view}", args=[long.pk]) for view in ("vm_detail", "policy_edit"))
    assert f'<a href="{detail}">{LONG}</a>' in shown and f'<a href="{edit}?' in shown
    for url in (detail, edit):
        assert "a policy name of at most 6 characters" in html.unescape(client.get(url).content.decode()), url
    page = client.get(detail).content.decode()
    assert f'id="edit-jit" href="{edit}"' in page and 'id="enable-jit"' not in page  # said at once, not on a click
    _policy("jit")  # a policy of its resource group and location whose name fits: selectable again
    assert f'name="vm" value="{long.pk}" form="bulk-enable"' in row(long) and "too-long" not in row(long)


@pytest.mark.django_db
def test_bulk_enable_of_all_matching_vms_leaves_out_one_named_too_long_and_saves_the_others(
        client, policy_admin, vms, django_capture_on_commit_callbacks):
    short, _long, other, last = vms
    client.force_login(policy_admin)
    page = client.get(reverse("policies:bulk_enable"), {"all": "1", "q": "vm-"})
    text = page.content.decode()
    assert page.status_code == 200 and '<strong id="enable-count">3 VMs</strong>' in text
    assert f"1 matching VM ({LONG}) was left out: its name is too long" in text
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("policies:bulk_enable"), enable_post(page)).status_code == 302
    assert set(PolicyChange.vms.through.objects.values_list("virtualmachine_id", flat=True)) == {
        short.pk, other.pk, last.pk}


@pytest.mark.django_db
def test_enabling_one_vm_named_too_long_says_why_and_what_to_do(client, policy_admin, vms):
    _short, long, *_rest = vms
    client.force_login(policy_admin)
    response = client.post(reverse("policies:vm_enable", args=[long.pk]))
    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert said == [f"{LONG}'s name (50 characters) and the JIT policy name 'default' are 57 characters together; "
                    "Azure allows at most 56. To enable JIT on it, put it in a JIT policy of resource group rg-bulk, "
                    "location westeurope, with a policy name of at most 6 characters (the command jit_policy set "
                    "--name, or Set-AzJitNetworkAccessPolicy -Name in Azure): once such a policy exists there, the "
                    "portal puts the VM in it."]
    # Enable JIT with custom settings… says it at once, with no ports to fill in for nothing.
    page = html.unescape(client.get(reverse("policies:policy_edit", args=[long.pk])).content.decode())
    assert "a policy name of at most 6 characters" in page and 'id="save-jit"' not in page
    assert not PolicyChange.objects.exists()


@pytest.mark.django_db
def test_a_vm_named_too_long_for_the_first_policy_goes_in_one_of_its_group_whose_name_fits(
        client, policy_admin, vms, django_capture_on_commit_callbacks):
    short, long, *_rest = vms
    _policy("default"), _policy("jit")
    assert selectors.enable_name_too_long([short, long]) == {}
    with django_capture_on_commit_callbacks(execute=False):
        changes = services.policy_enable(actor=policy_admin, vms=[short, long])
    assert sorted((c.policy_name, list(c.desired)) for c in changes) == [
        ("default", [short.arm_id]), ("jit", [long.arm_id])]


@pytest.mark.django_db
def test_a_vm_name_no_policy_name_fits_is_said_so(vms):
    vm = _named(vms[0], "v" * 56)
    assert selectors.enable_name_too_long([vm])[vm.pk].endswith(
        "No JIT policy name is short enough for it: JIT can be enabled only on a VM whose name has at most 55 "
        "characters.")


def test_the_limit_is_azures():
    assert rules.name_fits("default", "v" * 49) and not rules.name_fits("default", "v" * 50)


@pytest.mark.django_db
@pytest.mark.parametrize("policies", [[], ["default"], ["jit"], ["a-very-long-policy-name"], ["jit", "default"],
                                      ["a-very-long-policy-name", "j"]])
def test_the_database_condition_and_the_pages_check_name_the_same_vms(policies):
    """``name_too_long_condition`` (a filter over all that match) and ``enable_name_too_long`` (ticked VMs, one VM)
    are two forms of one rule: they must agree on every VM, whatever the policies of its resource group."""
    made = make_many_vms(12)
    group = [vm for vm in made if vm.resource_group_name == "rg-bulk" and not vm.policy_name]
    for vm, length in zip(group, (10, 32, 33, 49, 50, 51, 55, 56), strict=False):
        _named(vm, "v" * length)
    for name in policies:
        _policy(name)
    vms = list(VirtualMachine.objects.filter(pk__in=[vm.pk for vm in made]))
    by_query = set(VirtualMachine.objects.filter(pk__in=[vm.pk for vm in vms])
                   .filter(selectors.name_too_long_condition()).values_list("pk", flat=True))
    assert by_query == set(selectors.enable_name_too_long(vms))
    assert len(group) >= 6 and by_query
