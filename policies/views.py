"""Inventory, VM, JIT policy and subscription pages. Views validate, call a service and redirect."""
from __future__ import annotations

import copy
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_tables2.paginators import LazyPaginator

from accounts import authz
from accounts.access import requires
from accounts.roles import AUDIT_READ, JIT_INITIATE, JIT_POLICY_READ, JIT_POLICY_WRITE, SETTINGS_WRITE, VM_READ
from accounts.scopes import scope_contains
from jitportal.lib.tables import column_labels, page_size_choice, paginate, positive_int

from . import rules, select_across, selectors, services
from .access.client_ip import client_ip
from .access.selectors import open_access_by_vm, policy_requests_shown
from .filtersets import VirtualMachineFilterSet, filter_controls
from .forms import BulkEnableForm, SubscriptionForm, port_formset
from .models import JitPolicy, PolicyChange, Subscription, VirtualMachine, VmState
from .tables import ROW_FIELDS, VirtualMachineTable, render_rows

PER_PAGE = 50
# Up to this many VMs, Enable JIT's message names them; past it, it counts them (the inventory lists each change).
BULK_NAMED = 10
# Enabling JIT on all VMs that match: the page names this many, then counts the rest.
ALL_NAMED = 20
# The most VMs one Enable JIT saves (all VMs that match, ``_enable_all``): one transaction locks them all, holding
# SQLite's write lock. ``services.policy_enable`` works per policy and inserts the links and audit rows in bulk:
# 1,000 VMs over 10 policies take about 0.35 s of it (2,000 about 0.8 s, too near a second on two busy cores).
# A page of ticked rows is 100 at most; a selection of more ids (crafted) is refused past this too.
BULK_ENABLE_MAX = 1000
TABS = [(VmState.CONFIGURED, "Configured"), (VmState.NOT_CONFIGURED, "Not configured"),
        (VmState.UNSUPPORTED, "Unsupported")]


def _messages_from(request: HttpRequest, exc: ValidationError) -> None:
    for message in exc.messages:
        messages.error(request, message)


FIRST_SYNC_EMPTY = "No virtual machines here yet: a subscription's first sync is still running."
FILTERED_EMPTY = ("No virtual machines on this tab match the search or filters. The other tabs' counts show where "
                  "the matching ones are; or clear all filters.")


def _empty_text(tab: str, *, filtered: bool, may_write: bool) -> str:
    """What an empty tab says, and what to do next: a search or filter matching none of its VMs, else why the tab
    has none (nothing configured yet, every VM that can have JIT has it, none unsupported)."""
    if filtered:
        return FILTERED_EMPTY
    if tab == VmState.CONFIGURED:
        return "No VM has JIT enabled yet. " + (
            "Select VMs on the Not configured tab and choose Enable JIT on selected VMs." if may_write
            else "A JIT policy admin enables it on the VMs that support it (the Not configured tab).")
    if tab == VmState.NOT_CONFIGURED:
        return "No VM is waiting for JIT: every VM here that supports it has JIT enabled (the Configured tab)."
    return "No unsupported VMs: every VM here can have JIT."


@requires(VM_READ)
@require_safe
def inventory(request: HttpRequest) -> HttpResponse:
    """VMs grouped Configured / Not configured / Unsupported, with search, filters, sorting and pages."""
    tab = request.GET.get("tab", VmState.CONFIGURED)
    if tab not in VmState.values:
        tab = VmState.CONFIGURED
    subscriptions = selectors.visible_subscriptions(request.user)
    filterset = selectors.inventory_filterset(request.user, request.GET, subscriptions)
    filtered = filterset.qs
    counts = selectors.vm_counts_by_state(filtered)
    may_write = authz.holds_anywhere(request.user, JIT_POLICY_WRITE)
    may_request = authz.holds_anywhere(request.user, JIT_INITIATE)
    # Selected rows feed "Enable JIT" (Not configured) or "Request access" (Configured).
    select_form = ("bulk-enable" if tab == VmState.NOT_CONFIGURED and may_write
                   else "bulk-request" if tab == VmState.CONFIGURED and may_request else None)
    # Subscriptions whose first sync has not finished: their VMs are not listed yet (say so, not "none match").
    first_syncs = [s for s in subscriptions if s.last_sync_at is None]
    searched = any(str(request.GET.get(name, "")).strip() for name in filterset.filters)
    table = VirtualMachineTable(filtered.filter(state=tab).only(*ROW_FIELDS), tab=tab,
                                selectable=select_form is not None,
                                empty_text=FIRST_SYNC_EMPTY if first_syncs else _empty_text(
                                    tab, filtered=searched, may_write=may_write))
    paginate(request, table, per_page=PER_PAGE, paginator_class=LazyPaginator, count=counts[tab])
    shown = column_labels(table)
    records = [row.record for row in table.page.object_list]
    open_now = open_access_by_vm(records) if tab == VmState.CONFIGURED and records else None
    # Changes saved and not applied yet (one query): their rows say so and cannot be selected again.
    pending = selectors.pending_changes_by_vm(records) if tab != VmState.UNSUPPORTED and records else None
    # The changes an Enable JIT just made (``?saved=``): each followed to its end, whichever page its VMs are on.
    saved = selectors.saved_changes_shown(request.user, request.GET.get("saved", ""))
    shown_saved = {change.pk for change, _names, _more in saved}
    back = _list_query(request, tab)  # the list as shown, for Edit and Enable JIT to return to
    # Names too long for the JIT policy Enable JIT would put them in (one query): their rows cannot be selected.
    too_long = selectors.policy_names_too_long(records) if select_form == "bulk-enable" and records else None
    rows = render_rows(records, shown, select_form=select_form or "", open_now=open_now, pending=pending,
                       too_long=too_long, back=back,
                       select_needs={"bulk-enable": "edit", "bulk-request": "connect"}.get(select_form or "", ""),
                       menu=_row_menu(request.user))
    query = request.GET.copy()
    query.pop("page", None)
    tabs = []
    for value, label in TABS:
        query["tab"] = value
        tabs.append({"value": value, "label": label, "count": counts[value], "query": query.urlencode(),
                     "active": value == tab})
    return render(request, "policies/inventory.html", {
        "title": "Inventory", "table": table, "rows": rows,
        "select_across": _select_across(filterset, select_form, tab, counts[tab], records, back),
        "filter": filterset, "filter_controls": filter_controls(filterset), "tabs": tabs, "tab": tab,
        "may_write": may_write, "may_request": may_request,
        "defender_missing": [s for s in subscriptions if s.defender_missing],
        "sync_runs": selectors.latest_sync_runs(request.user, subscriptions), "show_sync": may_write,
        "has_subscriptions": bool(subscriptions), "first_syncs": first_syncs,
        "back": back,
        "pending_changes": [(change, names) for change, names in (
            selectors.pending_changes_shown(request.user, records, pending) if pending else [])
            if change.pk not in shown_saved],
        "saved_changes": saved, "page_size": page_size_choice(request, table, counts[tab]),
    })


def _select_across(filterset: VirtualMachineFilterSet, select_form: str | None, tab: str, matching: int,
                   records: list[VirtualMachine], back: str) -> dict | None:
    """The offer to act on all ``matching`` VMs of the tab, not only the page's (``inventory.js`` shows it once the
    whole page is ticked): only when the tab has more than the page shows and its filter has no error. What it
    submits is the filter (``selectors.match_query``), evaluated again by the page it opens, never the ids."""
    if not select_form or matching <= len(records) or (filterset.is_bound and not filterset.is_valid()):
        return None
    query = selectors.match_query(filterset.data)
    action = "policies:bulk_enable" if select_form == "bulk-enable" else "policies:request_new"
    link = [("all", "1"), *query, *([("back", back)] if select_form == "bulk-enable" else [])]
    return {"count": f"{matching:,}", "query": query, "form": select_form,
            "url": reverse(action) + "?" + urlencode(link)}


def _list_query(request: HttpRequest, tab: str) -> str:
    """The inventory's query string as shown, its tab always named (Edit returns to it, ``_inventory_back``)."""
    query = request.GET.copy()
    query["tab"] = tab
    return query.urlencode()


def _row_menu(user) -> Callable[[VirtualMachine], set[str]]:
    """The row-menu items ``user`` may use on a VM (the pages check again), from the scopes of each action worked
    out once per page: a page of 50 rows costs 50 prefix checks, not 150 grant evaluations."""
    scopes = {item: authz.permitted_scopes(user, action) for item, action in
              {"edit": JIT_POLICY_WRITE, "connect": JIT_INITIATE, "activity": AUDIT_READ}.items()}
    return lambda vm: {item for item, found in scopes.items()
                       if any(scope_contains(scope, vm.resource_id) for scope in found)}


@requires(JIT_POLICY_WRITE)
@require_http_methods(["GET", "HEAD", "POST"])
def bulk_enable(request: HttpRequest) -> HttpResponse:
    """Enable JIT on the selected Not configured VMs (``?vm=<id>&vm=<id>``), or on all those the inventory's filter
    matches (``?all=1&q=…&resource_group=…``, ``_enable_all``): the page lists the recommended ports (22, 3389, 5985,
    5986; 3 hours; source Any) to edit, remove or add to, and Save applies them to every VM."""
    posted = request.method == "POST"
    data = request.POST if posted else request.GET
    back = _inventory_back(data.get("back", ""))
    if data.get("all"):
        return _enable_all(request, data, back)
    ticked = len(data.getlist("vm"))
    if ticked > BULK_ENABLE_MAX:  # only a crafted selection: refused before any VM is read or checked
        messages.error(request, f"{ticked:,} VMs were selected: one save enables JIT on at most {BULK_ENABLE_MAX:,}. "
                                "Select fewer VMs.")
        return redirect(back)
    chosen = BulkEnableForm(data, queryset=selectors.vm_list(request.user),
                            may_configure=lambda vm: selectors.may_edit_policy(request.user, vm),
                            blocked=selectors.enable_blocked,
                            misnamed=lambda vms: selectors.enable_name_too_long(vms, subject="its name"))
    # A VM configured by someone else since the selection, one being enabled or having JIT removed (its row is not
    # selectable: a forged or stale selection), or one the user only reads, is named and left out; the edited ports
    # stay.
    if not chosen.is_valid() or not (chosen.cleaned_data["vm"] or (posted and chosen.taken_out)):
        for message in chosen.left_out_messages() if chosen.is_valid() else []:
            messages.error(request, message)
        messages.error(request, "Select at least one Not configured VM you may configure.")
        return redirect(back)
    vms = chosen.cleaned_data["vm"]
    problems, next_step = chosen.left_out_messages(), ""
    if not vms:
        problems.append("No selected VM is left to enable JIT on.")
    elif posted and chosen.taken_out:
        next_step = f"Save to enable JIT with these ports on {', '.join(vm.name for vm in vms)}."
    return _enable_page(request, vms, problems, back, save=posted and not chosen.taken_out, next_step=next_step)


def _enable_all(request: HttpRequest, data: QueryDict, back: str) -> HttpResponse:
    """Enable JIT on every Not configured VM the inventory's filter (carried in ``data``, never the ids) matches,
    evaluated again on each request with the same filterset and scope (``selectors.enable_matching``): the VMs the
    user may not configure now are left out and said so. The form carries a digest of the VMs it showed: a Save
    acts only when the filter still matches exactly those, else the page shows the new set to save again."""
    posted = request.method == "POST"
    # Counted before any row is read; the page names ``ALL_NAMED`` of them, a save reads them all.
    found = selectors.enable_matching(request.user, data, cap=BULK_ENABLE_MAX, shown=None if posted else ALL_NAMED)
    if select_across.refused(request, found, cap=BULK_ENABLE_MAX, may="enable JIT on", limit="one save enables",
                             nothing="No VM matching the filter is left to enable JIT on.", posted=posted):
        return redirect(back)
    problems = list(found.left_out)
    changed = posted and data.get("selection") != found.digest
    if not found.count:
        problems.append("No VM matching the filter is left to enable JIT on.")
    elif changed:
        problems.append(f"The VMs your filter matches changed since the page was shown: it now matches "
                        f"{found.count:,} you may enable JIT on. Check them, and Save to enable JIT on them.")
    return _enable_page(request, found.vms, problems, back, save=posted and not changed, matching=found)


def _enable_page(request: HttpRequest, vms: list[VirtualMachine], problems: list[str], back: str, *, save: bool,
                 matching: selectors.Matching | None = None, next_step: str = "") -> HttpResponse:
    """The Enable JIT page for ``vms`` (``matching``: all that the filter matches, of which ``vms`` may be only the
    first it names unless saving), saved when ``save`` and its ports are valid, then back to the inventory following
    the changes made; ``next_step`` ends the problems' summary."""
    posted = request.method == "POST"
    formset = port_formset(None, request.POST if posted else None)
    if save and vms and formset.is_valid():
        ports = formset.port_rules()
        try:
            changes = services.policy_enable(actor=request.user, vms=vms, ports=ports,
                                             client_ip=client_ip(request.META))
        except ValidationError as exc:
            problems = exc.messages
        except PermissionDenied as exc:
            problems = [str(exc)]
        else:
            named = ", ".join(vm.name for vm in vms) if len(vms) <= BULK_NAMED else f"{len(vms):,} VMs"
            messages.success(request, f"Enabling JIT on {named} with ports "
                                      f"{', '.join(str(p.number) for p in ports)} "
                                      f"({len(changes)} policy change{pluralize(len(changes))} pending).")
            # The inventory follows the first ``SAVED_MAX`` (a save over many policies: each VM's row says the rest).
            followed = ",".join(str(change.pk) for change in changes[:selectors.SAVED_MAX])
            return redirect(f"{back}&saved={followed}")
    count = matching.count if matching else len(vms)
    return render(request, "policies/bulk_enable.html", {
        "title": "Enable JIT on VMs", "vms": vms, "named": vms[:ALL_NAMED] if matching else vms,
        "more": f"{count - ALL_NAMED:,}" if matching and count > ALL_NAMED else "",
        "count": f"{count:,} VM{'s' if count != 1 else ''}", "matching": matching, "formset": formset,
        "problems": problems, "next_step": next_step, "back": back, "back_query": urlsplit(back).query},
        status=400 if posted else 200)


# What of the inventory's query a page opened from it brings back: its filters, search, sort and page.
LIST_STATE = (*VirtualMachineFilterSet.base_filters, "sort", "per_page", "page")


def _inventory_back(query: str, tab: str | None = VmState.NOT_CONFIGURED) -> str:
    """The inventory's ``tab`` (None: the tab of ``query``) with the list state of ``query`` (the query string the
    inventory was shown with), only the inventory's own parameters."""
    given = QueryDict(query[:2000])
    if tab is None:
        tab = given.get("tab") if given.get("tab") in VmState.values else VmState.CONFIGURED
    kept = [("tab", tab)] + [(key, value) for key in LIST_STATE for value in given.getlist(key)
                             if key != "tab" and value]
    return reverse("policies:inventory") + "?" + urlencode(kept)


@requires(JIT_POLICY_WRITE)
@require_POST
def sync_now(request: HttpRequest) -> HttpResponse:
    """Queue a sync of every subscription where the user configures JIT."""
    address = client_ip(request.META)
    runs = [services.sync_request(actor=request.user, subscription=s, client_ip=address)
            for s in selectors.syncable_subscriptions(request.user)]
    if runs:
        messages.success(request, f"Syncing {len(runs)} subscription{pluralize(len(runs))} from Azure.")
    else:
        messages.error(request, "No registered subscription to sync.")
    return redirect(_local_next(request, reverse("policies:inventory")))


def _local_next(request: HttpRequest, default: str) -> str:
    """The posted ``next`` when it is a path of this portal, else ``default`` (no redirect off the site; a word is not
    taken for a URL name, as ``redirect`` would)."""
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                                  require_https=request.is_secure()):
        return target
    return default


@requires(VM_READ)
@require_safe
def sync_status(request: HttpRequest) -> HttpResponse:
    """The latest sync of each subscription the user reads whole (polled while one runs); with ``?subscription=<pk>``
    (a subscription's own page), of that one only."""
    subscriptions = selectors.visible_subscriptions(request.user)
    only = positive_int(request.GET.get("subscription"), 0)
    if only:
        subscriptions = [s for s in subscriptions if s.pk == only]
    runs = selectors.latest_sync_runs(request.user, subscriptions)
    return render(request, "policies/_sync_status.html", {"sync_runs": runs, "only": only or None})


def _vm_requests(vm: VirtualMachine, user) -> list[dict]:
    """Azure's latest records of requests on ``vm`` (its ports of each), their justification naming no VM ``user``
    may not read (``policy_requests_shown``: a request on several VMs, or a portal request spanning scopes)."""
    policy = JitPolicy.objects.filter(resource_id=vm.policy_id.lower()).first() if vm.policy_name else None
    if policy is None:
        return []
    mine = [request for request in policy.requests if any(p.get("vm") == vm.resource_id
                                                           for p in request.get("ports", []))]
    mine.sort(key=lambda r: r.get("startTimeUtc") or "", reverse=True)
    return [{**request, "ports": [p for p in request.get("ports", []) if p.get("vm") == vm.resource_id],
             "started": parse_datetime(request.get("startTimeUtc") or "")}
            for request in policy_requests_shown(mine[:10], user)]


@requires(VM_READ, object_model=VirtualMachine)
@require_safe
def vm_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One VM: its JIT ports, NSG/firewall, addresses, drift, recent requests and changes."""
    return _vm_page(request, selectors.vm_get(request.user, pk))


def _vm_page(request: HttpRequest, vm: VirtualMachine, *, drift_problem: str = "") -> HttpResponse:
    """The VM's page; with ``drift_problem``, why its drift was not accepted (400)."""
    blocked = selectors.enable_blocked([vm]).get(vm.pk) if vm.state == VmState.NOT_CONFIGURED else None
    changes = selectors.vm_recent_changes(request.user, vm)
    return render(request, "policies/vm_detail.html", {
        "title": vm.name, "vm": vm, "ports": [rules.PortRule.from_azure(p) for p in vm.ports],
        # Being enabled or removed, or a name too long for the policy Enable JIT would put it in: said instead of
        # the button (Enable JIT with custom settings… says it too).
        "enable_blocked": selectors.enable_blocked_message("this VM", blocked) if blocked else (
            selectors.enable_name_too_long([vm]).get(vm.pk, "") if vm.state == VmState.NOT_CONFIGURED else ""),
        "drift": list(selectors.vm_open_drift(vm)), "changes": changes,
        # Accept Azure's settings carries the digest of the ports shown: ``drift_accept`` accepts only those.
        "drift_basis": rules.ports_basis(vm.ports), "drift_problem": drift_problem,
        "following_changes": any(not change.done for change in changes),
        "requests": _vm_requests(vm, request.user), "may_edit": selectors.may_edit_policy(request.user, vm),
        "may_connect": authz.has_permission(request.user, JIT_INITIATE, vm.resource_id),
        "default_ports": rules.default_ports(vm.os_type),
        "activity_url": (reverse("audit:search") + "?" + urlencode({"vm": vm.arm_id})
                         if authz.has_permission(request.user, AUDIT_READ, vm.resource_id) else ""),
    }, status=400 if drift_problem else 200)


@requires(JIT_POLICY_WRITE, object_model=VirtualMachine)
@require_http_methods(["GET", "HEAD", "POST"])
def policy_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit a VM's JIT ports: protocol, allowed sources, maximum time; add or remove ports."""
    vm = selectors.vm_get(request.user, pk, JIT_POLICY_WRITE)
    posted = request.method == "POST"
    # Unsupported, or Defender for Servers Plan 2 off: the page says why at once, with no ports to fill in for nothing.
    unavailable = selectors.jit_unavailable_reason(vm) or (  # or a name too long for the policy it would go in
        selectors.enable_name_too_long([vm]).get(vm.pk, "") if vm.state == VmState.NOT_CONFIGURED else "")
    # Opened from the inventory's row menu: Save, Cancel and the Inventory crumb return to the list as it was.
    back_query = (request.POST if posted else request.GET).get("back", "")
    back = _inventory_back(back_query, tab=None) if back_query else ""
    # A change saved and not applied yet: the form starts from the ports it sets, so saving again keeps them.
    pending = selectors.vm_pending_change(vm)
    pending_ports = pending.desired.get(vm.arm_id) if pending is not None else None
    formset = port_formset(vm, request.POST if posted else None, ports=pending_ports)
    current = selectors.ports_to_be(vm, pending)  # none while a removal is pending
    removing = pending is not None and pending.kind == PolicyChange.Kind.REMOVE
    basis = rules.ports_basis(current)  # the form says which ports it was shown with (``basis``)
    problems: list[str] = []
    # The form keeps the basis it was first shown with until a page names the ports as they are now: one sent back
    # for a mistake must not take on a change its admin was never shown (fixing the mistake would then save over it).
    sent = request.POST.get("basis") if posted else None
    shown = sent[:64] if sent else basis
    if posted and not unavailable and formset.is_valid():
        try:  # checked under the VM's row lock: a form without a basis counts as shown something else
            services.policy_save(actor=request.user, vm=vm, ports=formset.port_rules(),
                                 client_ip=client_ip(request.META), shown=sent or "")
        except ValidationError as exc:
            problems = exc.messages
            if getattr(exc, "code", None) == "ports_changed":
                # Another admin saved, or a sync brought Azure's change, since the page was shown (or the form
                # does not say what it was shown with): saving these rows could drop a change unseen. The rows
                # stay; the page names the ports as they are, and Save again applies.
                shown = basis
                problems = [(f"The JIT settings of {vm.name} changed since you opened this page (another admin "
                             "saved them, or they were changed in Azure)" if sent else
                             f"This form did not say which JIT settings of {vm.name} it was shown with, so saving it "
                             "could replace a change made since")
                            + (": JIT is being removed from it (saved, not applied in Azure yet). Your rows are kept: "
                               "check them and Save again to set them after the removal." if removing else
                               f": they are now {_ports_text(current)}. Your rows are kept: check them and Save "
                               "again to replace those settings.")]
        except PermissionDenied as exc:
            raise Http404("No such object.") from exc
        else:
            messages.success(request, f"Saving the JIT settings of {vm.name}.")
            return redirect(back or reverse("policies:vm_detail", args=[vm.pk]))
    return render(request, "policies/policy_edit.html", {
        "title": f"JIT VM access configuration: {vm.name}", "vm": vm, "formset": formset, "problems": problems,
        "rules": rules, "pending": pending, "back": back, "back_query": urlsplit(back).query,
        "unavailable": unavailable, "basis": shown}, status=400 if posted else 200)


def _ports_text(ports: list[dict] | None) -> str:
    """The ports in words: ``22 (TCP, up to 3 h, from Any), 3389 (…)``; ``none`` without any."""
    shown = [rules.PortRule.from_azure(port) for port in ports or []]
    return ", ".join(f"{rule.number} ({rules.PROTOCOL_LABELS.get(rule.protocol, rule.protocol)}, up to "
                     f"{rule.max_duration_label}, from "
                     f"{', '.join('Any' if s == rules.ANY_SOURCE else s for s in rule.sources)})"
                     for rule in sorted(shown, key=lambda rule: rule.number)) or "none"


@requires(JIT_POLICY_WRITE, object_model=VirtualMachine)
@require_POST
def vm_enable(request: HttpRequest, pk: int) -> HttpResponse:
    """Enable JIT on one VM with its OS default (Windows RDP 3389, Linux SSH 22; 3 hours; source Any)."""
    vm = selectors.vm_get(request.user, pk, JIT_POLICY_WRITE)
    try:
        services.policy_enable(actor=request.user, vms=[vm], os_default=True, client_ip=client_ip(request.META))
    except ValidationError as exc:
        _messages_from(request, exc)
    except PermissionDenied as exc:
        raise Http404("No such object.") from exc
    else:
        messages.success(request, f"Enabling JIT on {vm.name}.")
    return redirect("policies:vm_detail", pk=vm.pk)


@requires(JIT_POLICY_WRITE, object_model=VirtualMachine)
@require_http_methods(["GET", "HEAD", "POST"])
def vm_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """Confirm (GET) and remove (POST) JIT from one VM."""
    vm = selectors.vm_get(request.user, pk, JIT_POLICY_WRITE)
    if request.method != "POST":
        if not vm.policy_name:
            messages.info(request, f"{vm.name} has no JIT policy to remove.")
            return redirect("policies:vm_detail", pk=vm.pk)
        open_now = open_access_by_vm([vm]).get(vm.pk, [])
        people = "; ".join(f"{name} (port{'s' if len(ports) > 1 else ''} {', '.join(map(str, ports))})"
                           for name, ports in open_now)
        return render(request, "generic/confirm.html", {
            "title": f"Remove JIT from {vm.name}", "question": f"Remove just-in-time access from {vm.name}?",
            "consequence": "Its ports leave the JIT policy: Azure deletes their deny rules, so they are no longer "
                           "closed by JIT and nobody needs to request them."
                           + (f" Open now, and ended by this: {people}." if people else ""),
            "confirm_label": "Yes, remove JIT", "cancel_url": reverse("policies:vm_detail", args=[vm.pk]),
            "crumbs": [(reverse("policies:inventory"), "Inventory"),
                       (reverse("policies:vm_detail", args=[vm.pk]), vm.name)]})
    try:
        services.policy_remove(actor=request.user, vm=vm, client_ip=client_ip(request.META))
    except ValidationError as exc:
        _messages_from(request, exc)
    except PermissionDenied as exc:
        raise Http404("No such object.") from exc
    else:
        messages.success(request, f"Removing JIT from {vm.name}.")
    return redirect("policies:vm_detail", pk=vm.pk)


@requires(JIT_POLICY_WRITE, object_model=VirtualMachine)
@require_POST
def drift_accept(request: HttpRequest, pk: int) -> HttpResponse:
    """Accept the policy Azure has for this VM as the portal's baseline: the ports the page showed (its ``basis``),
    else the page again with the ports there are now, accepting nothing."""
    vm = selectors.vm_get(request.user, pk, JIT_POLICY_WRITE)
    sent = request.POST.get("basis")
    try:
        services.drift_accept(actor=request.user, vm=vm, client_ip=client_ip(request.META), shown=sent or "")
    except PermissionDenied as exc:
        raise Http404("No such object.") from exc
    except ValidationError:  # a sync brought other ports since the page was shown
        vm = selectors.vm_get(request.user, pk, JIT_POLICY_WRITE)
        return _vm_page(request, vm, drift_problem=(
            f"Azure's JIT settings of {vm.name} changed since the page was shown" if sent else
            f"The form did not say which of Azure's JIT settings of {vm.name} it was shown with")
            + f": nothing was accepted. Azure now has {_ports_text(vm.ports)}. Check them below, and accept "
              "again if the portal should keep them.")
    messages.success(request, f"Accepted Azure's JIT settings of {vm.name}.")
    return redirect("policies:vm_detail", pk=vm.pk)


@requires(JIT_POLICY_READ, VM_READ, object_model=PolicyChange)
@require_safe
def change_status(request: HttpRequest, pk: int) -> HttpResponse:
    """One policy change's state (pending / applied / failed with Azure's message), as on the VM pages that list it:
    polled while pending, by anyone who may read one of its VMs."""
    change = selectors.change_seen_get(request.user, pk)
    response = render(request, "policies/_change_status.html", {"change": change})
    if change.done:  # the inventory reloads its rows and tab counts (``inventory.html``'s #inventory-refresh)
        response["HX-Trigger"] = "policyChangeDone"
    return response


# --- subscriptions (Settings) -----------------------------------------------------------------------------
@requires(SETTINGS_WRITE)
@require_safe
def subscription_list(request: HttpRequest) -> HttpResponse:
    """Registered subscriptions with their Defender check and last sync."""
    subscriptions = list(selectors.subscription_list(request.user))
    runs = selectors.latest_sync_runs(request.user, subscriptions, SETTINGS_WRITE)
    return render(request, "policies/subscription_list.html", {
        "title": "Subscriptions", "subscriptions": subscriptions, "sync_runs": {r.subscription_id: r for r in runs},
        "manages_subscriptions": selectors.manages_whole_subscriptions(request.user)})


@requires(SETTINGS_WRITE)
@require_http_methods(["GET", "HEAD", "POST"])
def subscription_add(request: HttpRequest) -> HttpResponse:
    """Register a subscription (tenant, id, credential reference, ARM endpoint)."""
    form = SubscriptionForm(request.POST or None, actor=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            subscription = services.subscription_register(actor=request.user, client_ip=client_ip(request.META),
                                                          **form.cleaned_data)
        except PermissionDenied as exc:
            form.add_error("subscription_id", str(exc))
        else:
            messages.success(request, f"Registered {subscription}; its inventory is syncing.")
            return redirect("policies:subscriptions")
    return render(request, "policies/subscription_form.html", {"title": "Register a subscription", "form": form},
                  status=400 if request.method == "POST" else 200)


@requires(SETTINGS_WRITE, object_model=Subscription)
@require_http_methods(["GET", "HEAD", "POST"])
def subscription_edit(request: HttpRequest, pk: int) -> HttpResponse:
    subscription = selectors.subscription_get(request.user, pk)
    # The form validates a copy: a refused edit leaves the page's title, crumbs and sync status as stored.
    form = SubscriptionForm(request.POST or None, instance=copy.copy(subscription), actor=request.user)
    # The form keeps the basis it was first shown with until a page names the settings as they are now (as the JIT
    # settings' form does): one sent back for a mistake must not take on another admin's change unseen.
    sent = request.POST.get("basis", "") if request.method == "POST" else None
    basis = sent[:200] if sent else services.subscription_basis(subscription)
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if k != "subscription_id"}
        try:
            services.subscription_update(actor=request.user, subscription=subscription,
                                         client_ip=client_ip(request.META), shown=sent, **data)
        except services.SubscriptionChanged as exc:  # another admin saved it since: the typed values stay
            subscription, basis = exc.current, services.subscription_basis(exc.current)
            form.add_error(None, _subscription_changed_text(form, exc))
        else:
            messages.success(request, f"Saved {subscription}.")
            return redirect("policies:subscriptions")
    runs = selectors.latest_sync_runs(request.user, [subscription], SETTINGS_WRITE)
    return render(request, "policies/subscription_form.html", {
        "title": str(subscription), "form": form, "subscription": subscription, "sync_runs": runs,
        "only": subscription.pk, "basis": basis},
        status=400 if request.method == "POST" else 200)


def _subscription_changed_text(form: SubscriptionForm, exc: services.SubscriptionChanged) -> str:
    """What changed in the subscription's settings since its form was shown, with the values they hold now."""
    if exc.changed is None:
        said = (f"This form did not say which settings of {exc.current} it was shown with, so saving it could "
                "replace a change made since.")
    else:
        now = services.subscription_values(exc.current)
        said = (f"The settings of {exc.current} changed since you opened this page (another admin saved them): "
                + "; ".join(f"{form.fields[name].label} is now {_setting_text(now[name])}" for name in exc.changed)
                + ".")
    return said + " Your values are kept: check them and Save again to replace the settings as they are now."


def _setting_text(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value) if value not in (None, "") else "empty"


@requires(SETTINGS_WRITE, object_model=Subscription)
@require_POST
def subscription_sync(request: HttpRequest, pk: int) -> HttpResponse:
    subscription = selectors.subscription_get(request.user, pk)
    try:
        services.sync_request(actor=request.user, subscription=subscription, client_ip=client_ip(request.META))
    except services.SubscriptionDisabled as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Syncing {subscription} from Azure.")
    return redirect("policies:subscription_edit", pk=subscription.pk)
