"""The inventory's "Select all N VMs that match": when it is offered, and the bulk actions over every VM the filter
matches (Enable JIT, Request access), evaluated again on the server with the page's filterset and the user's scope.

No cloud call happens here: changes are only queued (tasks are captured, not run).
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from policies.models import PolicyChange, Subscription, VirtualMachine, VmState
from tests.policies.factories import DEV, PROD, make_many_vms

RG_WEB = f"/subscriptions/{PROD}/resourceGroups/rg-web-prod"


def enable_post(page, **extra) -> dict:
    """The Enable JIT page's form as shown (hidden fields and the recommended ports), sent as it is."""
    text = page.content.decode()
    form = text[text.index('id="policy-form"'):]
    form = form[:form.index("</form>")]
    data: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form):
        data.setdefault(name, []).append(value.replace("&amp;", "&"))
    for i, number in enumerate((22, 3389, 5985, 5986)):
        data |= {f"ports-{i}-number": [str(number)], f"ports-{i}-protocol": ["*"], f"ports-{i}-sources": ["*"],
                 f"ports-{i}-max_hours": ["3"], f"ports-{i}-max_minutes": ["0"]}
    data |= {"ports-TOTAL_FORMS": ["4"], "ports-INITIAL_FORMS": ["4"], "ports-MIN_NUM_FORMS": ["0"],
             "ports-MAX_NUM_FORMS": ["50"]}
    return {**data, **extra}


def not_configured_in(group: str, subscription_id: str = PROD) -> set[int]:
    return set(VirtualMachine.objects.filter(state=VmState.NOT_CONFIGURED, resource_group=group,
                                             subscription_key=subscription_id).values_list("pk", flat=True))


def groups_synced(*groups: str) -> None:
    """The resource groups the last sync listed (the filter's choices for whoever reads the whole subscription)."""
    Subscription.objects.update(resource_groups=sorted(groups))


def enabled_vms() -> set[int]:
    return set(PolicyChange.vms.through.objects.values_list("virtualmachine_id", flat=True))


@pytest.mark.django_db
def test_the_offer_appears_only_when_the_tab_has_more_vms_than_the_page_and_carries_the_filter(client,
                                                                                             policy_admin):
    make_many_vms(3 * 60)  # 60 in each tab, 30 of them Windows
    client.force_login(policy_admin)
    page = client.get(reverse("policies:inventory"), {"tab": "not_configured"}).content.decode()
    assert 'id="select-across-all"' in page and "Select all 60 VMs that match" in page
    assert '<input type="hidden" name="all" value="1" disabled>' in page  # sent only once chosen (inventory.js)
    assert "Enable JIT on</a>" not in page and "Enable JIT on all 60 VMs that match</a>" in page  # without JS
    page = client.get(reverse("policies:inventory"), {"tab": "configured", "os": "Windows", "per_page": "20",
                                                      "sort": "-name"}).content.decode()
    across = page[page.index('id="select-across"'):]
    across = across[:across.index("</span>")]
    assert "Select all 30 VMs that match" in across
    assert '<input type="hidden" name="os" value="Windows" disabled>' in across
    assert "per_page" not in across and "sort" not in across  # the filter only, not how the page shows it
    link = re.search(r'<a href="([^"]+)" id="select-across-link"', page).group(1).replace("&amp;", "&")
    assert urlsplit(link).path == reverse("policies:request_new")
    assert dict(parse_qsl(urlsplit(link).query)) == {"all": "1", "os": "Windows"}
    # Not useful: every matching VM is on the page, or the filter has an error (it would act on more than shown).
    for query in ({"tab": "not_configured", "per_page": "100"}, {"tab": "not_configured", "q": "vm-0000"},
                  {"tab": "not_configured", "os": "Solaris"}, {"tab": "unsupported"}):
        page = client.get(reverse("policies:inventory"), query).content.decode()
        assert 'id="select-across-all"' not in page and 'name="all"' not in page, query
        assert 'id="select-across"' in page or query["tab"] == "unsupported"  # the htmx reload's target stays


@pytest.mark.django_db
def test_a_reader_is_offered_nothing_to_select(client, reader):
    make_many_vms(3 * 60)
    client.force_login(reader)
    page = client.get(reverse("policies:inventory"), {"tab": "not_configured"}).content.decode()
    assert 'id="select-across-all"' not in page and 'name="vm"' not in page


@pytest.mark.django_db
def test_enabling_jit_on_all_matching_vms_takes_the_filter_evaluated_on_the_server(
        client, policy_admin, django_capture_on_commit_callbacks):
    make_many_vms(3 * 60, group="rg-a")
    make_many_vms(3 * 60, group="rg-b")
    groups_synced("rg-a", "rg-b")
    client.force_login(policy_admin)
    wanted = set(VirtualMachine.objects.filter(state=VmState.NOT_CONFIGURED, resource_group="rg-a",
                                               os_type="Windows").values_list("pk", flat=True))
    back = "tab=not_configured&resource_group=rg-a&os=Windows&page=2"
    page = client.get(reverse("policies:bulk_enable"), {"all": "1", "resource_group": "rg-a", "os": "Windows",
                                                        "back": back, "vm": ["1", "2"]})  # ticked ids: ignored
    text = page.content.decode()
    assert page.status_code == 200 and len(wanted) == 30
    assert "(Resource group: rg-a; OS: Windows)" in text and '<strong id="enable-count">30 VMs</strong>' in text
    assert "and 10 more" in text  # 20 named, the rest counted
    data = enable_post(page)
    assert "vm" not in data and data["all"] == ["1"] and data["resource_group"] == ["rg-a"]
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("policies:bulk_enable"), data)
    assert response.status_code == 302
    assert enabled_vms() == wanted
    target = urlsplit(response["Location"])
    assert target.path == reverse("policies:inventory") and "resource_group=rg-a" in target.query
    assert "saved=" in target.query


@pytest.mark.django_db
def test_a_policy_admin_scoped_to_one_resource_group_selecting_all_never_gets_another_groups_vms(
        client, django_capture_on_commit_callbacks):
    from tests.audit.factories import user_with_role

    make_many_vms(3 * 60, group="rg-web-prod")
    make_many_vms(3 * 60, group="rg-other")  # the same subscription: read only
    make_many_vms(30, subscription_id=DEV, group="rg-web-prod")  # not even read
    groups_synced("rg-other", "rg-web-prod")
    gina = user_with_role("gina@contoso.example", "policy_admin", RG_WEB, app_role="JIT.Gina")
    from accounts.models import RoleMapping

    RoleMapping.objects.create(source_kind="app_role", source_value="JIT.Gina", role="reader",
                               scope=f"/subscriptions/{PROD}")
    client.force_login(gina)
    page = client.get(reverse("policies:inventory"), {"tab": "not_configured"}).content.decode()
    assert "Select all 120 VMs that match" in page  # those she reads: both groups of Production, not Dev/Test
    page = client.get(reverse("policies:bulk_enable"), {"all": "1"})
    text = page.content.decode()
    assert '<strong id="enable-count">60 VMs</strong>' in text
    assert "60 matching VMs (vm-00001, vm-00004, vm-00007 and 57 more) were left out: you may not configure JIT " \
           "there." in text
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("policies:bulk_enable"), enable_post(page)).status_code == 302
    assert enabled_vms() == not_configured_in("rg-web-prod")
    # Asking for the other group by its filter finds nothing she may configure there.
    response = client.get(reverse("policies:bulk_enable"), {"all": "1", "resource_group": "rg-other"}, follow=True)
    text = response.content.decode()
    assert "No VM matching the filter is left to enable JIT on." in text
    assert "were left out: you may not configure JIT there." in text
    # A group outside her read scope is not a filter choice: an error, not "everything" (the filter dropped).
    response = client.get(reverse("policies:bulk_enable"), {"all": "1", "subscription": DEV}, follow=True)
    assert "Correct the inventory&#x27;s filter" in response.content.decode()
    assert enabled_vms() == not_configured_in("rg-web-prod")


@pytest.mark.django_db
def test_a_save_over_all_matching_vms_acts_only_on_the_vms_the_page_showed(client, policy_admin,
                                                                             django_capture_on_commit_callbacks):
    vms = make_many_vms(3 * 60)
    client.force_login(policy_admin)
    page = client.get(reverse("policies:bulk_enable"), {"all": "1", "os": "Linux"})
    data = enable_post(page)
    newcomer = next(vm for vm in vms if vm.state == VmState.CONFIGURED and vm.os_type == "Linux")
    VirtualMachine.objects.filter(pk=newcomer.pk).update(state=VmState.NOT_CONFIGURED, policy_name="", ports=[])
    response = client.post(reverse("policies:bulk_enable"), data)  # a sync since: the filter matches one more
    assert response.status_code == 400 and not PolicyChange.objects.exists()
    assert "now matches 31 you may enable JIT on" in response.content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("policies:bulk_enable"), enable_post(response)).status_code == 302
    assert newcomer.pk in enabled_vms() and len(enabled_vms()) == 31


@pytest.mark.django_db
def test_all_matching_leaves_out_vms_being_enabled_and_a_page_of_followed_changes_stays_bounded(
        client, policy_admin, django_capture_on_commit_callbacks, settings):
    from policies import selectors

    for i in range(selectors.SAVED_MAX + 5):  # one Not configured VM in each of 105 resource groups: 105 policies
        make_many_vms(2, group=f"rg-{i:03d}")
    client.force_login(policy_admin)
    page = client.get(reverse("policies:bulk_enable"), {"all": "1"})
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("policies:bulk_enable"), enable_post(page))
    assert response.status_code == 302 and PolicyChange.objects.count() == selectors.SAVED_MAX + 5
    saved = dict(parse_qsl(urlsplit(response["Location"]).query))["saved"]
    assert len(saved.split(",")) == selectors.SAVED_MAX  # the URL stays short; each VM's row names its change
    response = client.get(reverse("policies:bulk_enable"), {"all": "1"}, follow=True)
    text = response.content.decode()
    assert "105 matching VMs (vm-00001, vm-00001, vm-00001 and 102 more) were left out: JIT is being enabled or " \
           "removed there" in text
    assert "No VM matching the filter is left to enable JIT on." in text


@pytest.mark.django_db
def test_enable_all_past_its_limit_sends_back_to_narrow_the_filter(client, policy_admin, monkeypatch):
    from policies import views

    monkeypatch.setattr(views, "BULK_ENABLE_MAX", 50)
    make_many_vms(3 * 60)
    client.force_login(policy_admin)
    response = client.get(reverse("policies:bulk_enable"), {"all": "1", "back": "tab=not_configured&q=vm"},
                          follow=True)
    assert response.redirect_chain[-1][0].endswith("?tab=not_configured&q=vm")
    assert "The filter matches 60 VMs you may enable JIT on: one save enables at most 50." in \
        response.content.decode()
    assert not PolicyChange.objects.exists()


@pytest.mark.django_db
def test_requesting_access_to_all_matching_vms_opens_the_form_for_exactly_those_a_requester_may_request(
        client, requester):
    from accounts.models import RoleMapping
    from tests.plugins.personas import APP_ROLE_OF

    make_many_vms(3 * 60, group="rg-a")
    make_many_vms(3 * 60, subscription_id=DEV, group="rg-a")  # Dev/Test: read only
    RoleMapping.objects.create(source_kind="app_role", source_value=APP_ROLE_OF["requester"], role="auditor",
                               scope=f"/subscriptions/{DEV}")  # reads the VMs, may not request (a reader may)
    client.force_login(requester)
    page = client.get(reverse("policies:inventory"), {"tab": "configured", "os": "Linux"}).content.decode()
    assert "Select all 60 VMs that match" in page
    response = client.get(reverse("policies:request_new"), {"all": "1", "os": "Linux"})
    text = response.content.decode()
    wanted = set(VirtualMachine.objects.filter(state=VmState.CONFIGURED, os_type="Linux", subscription_key=PROD)
                 .values_list("pk", flat=True))
    assert response.status_code == 200 and len(wanted) == 30
    assert {int(pk) for pk in re.findall(r'<input type="hidden" name="vm" value="(\d+)">', text)} == wanted
    assert '<strong id="request-count">30 VMs</strong>' in text and "(OS: Linux)" in text
    assert "30 matching VMs (" in text and "were left out: your role does not allow requests there." in text


@pytest.mark.django_db
def test_requesting_access_to_more_vms_than_a_request_names_sends_back_to_narrow_the_filter(client, requester):
    make_many_vms(3 * 110, group="rg-a")  # 110 Configured
    groups_synced("rg-a")
    client.force_login(requester)
    response = client.get(reverse("policies:request_new"), {"all": "1", "resource_group": "rg-a"}, follow=True)
    assert response.redirect_chain == [(reverse("policies:inventory") + "?tab=configured&resource_group=rg-a", 302)]
    assert "The filter matches 110 VMs you may request access to: one request names at most 100." in \
        response.content.decode()
    response = client.get(reverse("policies:request_new"), {"all": "1", "q": "vm-000"})  # vm-00000 … vm-00099
    assert response.status_code == 200 and response.content.decode().count('type="hidden" name="vm"') == 34


@pytest.mark.django_db
def test_a_filter_given_twice_is_carried_as_the_page_applies_it(client, policy_admin):
    """A query naming a filter twice (an edited link: ``?os=Linux&os=Windows``, ``?q=&q=vm-00``) is applied by the
    page with its last value, as Django's forms read it: "all that match" carries that one, not the first (which
    acted on other VMs than the page counted, or on every VM of the tab for an empty first search)."""
    make_many_vms(3 * 60)
    client.force_login(policy_admin)
    for query, expected in ([("os", "Linux"), ("os", "Windows")], {"os": "Windows"}), (
            [("q", ""), ("q", "vm-00")], {"q": "vm-00"}):
        page = client.get(reverse("policies:inventory"), [("tab", "configured"), *query, ("per_page", "20")])
        text = page.content.decode()
        count = page.context["select_across"]["count"]
        link = re.search(r'<a href="([^"]+)" id="select-across-link"', text).group(1).replace("&amp;", "&")
        assert dict(parse_qsl(urlsplit(link).query)) == {"all": "1", **expected}, query
        form = client.get(reverse("policies:request_new"), [("all", "1"), *query])
        assert form.status_code == 200 and len(form.context["vms"]) == int(count), query


def vm_rows_read(queries) -> list[str]:
    """The statements of ``queries`` that read VM rows (their columns, not only a count, their ids or names)."""
    return [q["sql"] for q in queries.captured_queries if '"policies_virtualmachine"."arm_id"' in q["sql"]]


def vm_statements(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if '"policies_virtualmachine"' in q["sql"]]


@pytest.mark.django_db
@pytest.mark.parametrize(("page", "tab", "module", "cap", "said"), [
    ("policies:bulk_enable", "not_configured", "policies.views", "BULK_ENABLE_MAX",
     "The filter matches 60 VMs you may enable JIT on: one save enables at most 50."),
    ("policies:request_new", "configured", "policies.access.views", "REQUEST_MAX_VMS",
     "The filter matches 60 VMs you may request access to: one request names at most 50."),
])
def test_all_that_match_past_the_cap_is_refused_from_one_count_reading_no_vm(client, policy_admin, requester,
                                                                            monkeypatch, page, tab, module, cap, said):
    """A tenant's 10,000 VMs are not read to find that they are too many: the scoped, filtered set is counted (one
    COUNT) and refused past the cap before any of its rows, ids or names is read."""
    import importlib

    monkeypatch.setattr(importlib.import_module(module), cap, 50)
    make_many_vms(3 * 60)
    client.force_login(policy_admin if tab == "not_configured" else requester)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(page), {"all": "1"})
    assert response.status_code == 302
    statements = vm_statements(queries)
    assert len(statements) == 1 and statements[0].startswith("SELECT COUNT(*)"), statements
    assert said in client.get(response["Location"]).content.decode()


@pytest.mark.django_db
def test_the_enable_page_over_all_that_match_reads_only_the_vms_it_names_and_a_save_all_of_them(
        client, policy_admin, django_capture_on_commit_callbacks):
    """Under the cap, the page reads the set's ids (its digest) and the rows of the 20 VMs it names; the save reads
    every row it enables, and its digest, from all the ids, still names exactly the set the page showed."""
    make_many_vms(3 * 100)  # 100 Not configured
    client.force_login(policy_admin)
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("policies:bulk_enable"), {"all": "1"})
    assert page.status_code == 200 and '<strong id="enable-count">100 VMs</strong>' in page.content.decode()
    assert "and 80 more" in page.content.decode()
    rows = vm_rows_read(queries)
    assert len(rows) == 1 and rows[0].endswith("LIMIT 20"), rows
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(reverse("policies:bulk_enable"), enable_post(page)).status_code == 302
    assert enabled_vms() == set(VirtualMachine.objects.filter(state=VmState.NOT_CONFIGURED).values_list("pk",
                                                                                                       flat=True))


@pytest.mark.django_db
def test_all_that_match_leaves_out_vms_without_defender_or_jit_naming_why(client, policy_admin, requester):
    """The VMs of a subscription without Defender for Servers Plan 2, and (to request) a Configured VM whose JIT was
    taken off, are left out, counted and named with the reason, from queries over them (no row read)."""
    from accounts.models import RoleMapping
    from tests.plugins.personas import APP_ROLE_OF

    make_many_vms(3 * 10)
    make_many_vms(3 * 5, subscription_id=DEV, group="rg-dev")
    Subscription.objects.filter(subscription_id=DEV).update(defender_p2=False, display_name="Contoso Dev/Test")
    VirtualMachine.objects.filter(name="vm-00000", subscription_key=PROD).update(policy_name="")
    for persona in ("policy_admin", "requester"):
        RoleMapping.objects.create(source_kind="app_role", source_value=APP_ROLE_OF[persona], role=persona,
                                   scope=f"/subscriptions/{DEV}")
    client.force_login(policy_admin)
    text = client.get(reverse("policies:bulk_enable"), {"all": "1"}).content.decode()
    assert '<strong id="enable-count">10 VMs</strong>' in text
    assert ("5 matching VMs (vm-00001, vm-00004, vm-00007 and 2 more) were left out: Defender for Servers Plan 2 is "
            "off on the subscription (Contoso Dev/Test).") in text
    client.force_login(requester)
    text = client.get(reverse("policies:request_new"), {"all": "1"}).content.decode()
    assert '<strong id="request-count">9 VMs</strong>' in text
    assert "1 matching VM (vm-00000) was left out: JIT is not enabled there any more." in text
    assert ("5 matching VMs (vm-00000, vm-00003, vm-00006 and 2 more) were left out: Defender for Servers Plan 2 is "
            "off on the subscription (Contoso Dev/Test).") in text
