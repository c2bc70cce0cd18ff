"""Access request pages: ask (form and Connect), watch (polled status), close, extend, and the Requests list."""
from __future__ import annotations

from datetime import timedelta
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_htmx.http import HttpResponseStopPolling
from django_tables2 import RequestConfig

from accounts import authz
from accounts.access import authenticated_only, requires
from accounts.roles import AUDIT_READ, JIT_INITIATE, JIT_POLICY_WRITE, REQUEST_APPROVE
from accounts.selectors import no_role_contact
from jitportal.lib.tables import seek_list_page, seek_page_size_choice
from jitportal.lib.times import zoned_text
from policies import select_across
from policies.models import VirtualMachine, VmState
from policies.selectors import Matching, vm_list

from . import approvals, selectors, services, validation
from .client_ip import client_address, client_ip
from .filtersets import AccessRequestFilterSet
from .forms import AccessRequestForm, ExtendForm, new_token
from .models import AccessRequest, AccessRequestPort, AccessRequestVm, PortState
from .tables import AccessRequestTable

PER_PAGE = 50
# The most VMs one request names, as the API's (``virtualMachines``, ``api.serializers.MAX_LIST``) and as one inventory
# page at most (``MAX_PER_PAGE``): the form lists each VM's ports to tick.
REQUEST_MAX_VMS = 100


def _form(request: HttpRequest, vms: list[VirtualMachine], data=None) -> AccessRequestForm:
    return AccessRequestForm(data or (request.POST if request.method == "POST" else None), vms=vms,
                             my_ip=client_address(request.META), duration_choices=selectors.duration_choices_for(vms))


def _submit(request: HttpRequest, form: AccessRequestForm, *, each_port_maximum: bool = False
            ) -> HttpResponse | None:
    """Create the request from a valid form; a redirect to its page, or ``None`` with errors on the form."""
    data = form.cleaned_data
    try:
        access, created = services.request_create(
            actor=request.user, selections=form.selections(), source_prefix=data["source_prefix"],
            duration=data["window"], justification=data["justification"], idempotency_key=data["token"],
            source_kind=data["source_kind"], source_warning=data["source_warning"],
            client_ip=str(form.my_ip.address) if form.my_ip else None, start_at=data.get("start_at"),
            each_port_maximum=each_port_maximum)
    except ValidationError as exc:
        form.add_refusal(exc)
        return None
    except PermissionDenied as exc:
        raise Http404("No such object.") from exc
    if not created:  # a double submit, or the form sent again from the browser's history with other choices
        messages.info(request, f"This form was already sent as request #{access.pk}; nothing new was asked for. "
                               "To ask for something else, open the form again.")
    elif data.get("source_note"):
        messages.warning(request, data["source_note"])
    return redirect("policies:request_detail", pk=access.pk)


@requires(JIT_INITIATE)
@require_http_methods(["GET", "HEAD", "POST"])
def request_new(request: HttpRequest) -> HttpResponse:
    """Request access to one or several VMs (``?vm=<id>&vm=<id>``): ports, source, time range, justification.
    Without VMs it sends the user to the inventory's Configured tab to select them; ``?all=1`` with the inventory's
    filter takes every VM it matches (``_request_all``). A POST with ``then=edit`` (the Connect page's way here)
    shows the form with what was typed there, asking for nothing yet."""
    if request.method != "POST" and request.GET.get("all"):
        return _request_all(request)
    editing = request.method == "POST" and request.POST.get("then") == EDIT
    sending = request.method == "POST" and not editing
    ids = request.POST.getlist("vm") if request.method == "POST" else request.GET.getlist("vm")
    if len(ids) > REQUEST_MAX_VMS:  # only a crafted selection (a page has 100 rows at most): no VM is read
        messages.error(request, f"{len(ids):,} VMs were selected: one request names at most {REQUEST_MAX_VMS}. "
                                "Select fewer VMs.")
        return redirect(reverse("policies:inventory") + "?tab=configured")
    try:
        wanted = {int(pk) for pk in ids}
    except ValueError as exc:
        raise Http404("No such object.") from exc
    if any(not 0 < pk < 2**63 for pk in wanted):  # names nothing; the database never sees an overflow
        raise Http404("No such object.")
    if not wanted:  # the VMs are chosen where they are listed (the seed: Configured tab, select, Request access)
        messages.info(request, "Select the VMs you want to access, then choose Request access.")
        return redirect(reverse("policies:inventory") + "?tab=configured")
    vms = list(selectors.requestable_vms(request.user).filter(pk__in=wanted))
    if len(vms) != len(wanted):
        if sending and vms:
            return _without_gone(request, vms, wanted - {vm.pk for vm in vms})
        return _not_requestable(request, wanted - {vm.pk for vm in vms})
    form = _edit_form(request, vms) if editing else _form(request, vms)
    if sending and form.is_valid():
        response = _submit(request, form)
        if response is not None:
            return response
    return _form_page(request, form, vms)


def _form_page(request: HttpRequest, form: AccessRequestForm, vms: list[VirtualMachine],
               matching: Matching | None = None) -> HttpResponse:
    return render(request, "policies/access/request_form.html", {
        "title": "Request access", "form": form, "vms": vms, "my_ip": form.my_ip, "matching": matching,
        "open_now": _open_now(vms)}, status=400 if form.is_bound else 200)


# The marker (``then=edit``) of a form sent to the request form to be shown there, not sent: the Connect page's
# "Choose ports, source and time range…" button and its error summary's way to the full form.
EDIT = "edit"


def _edit_form(request: HttpRequest, vms: list[VirtualMachine]) -> AccessRequestForm:
    """The form unbound, with the justification sent from the Connect page (in the POST body, never in a URL), its
    ports and my IP, and the longest time every port allows (the Connect page asks each for its own maximum)."""
    form = AccessRequestForm(initial={"justification": request.POST.get("justification", "")}, vms=vms,
                             my_ip=client_address(request.META),
                             duration_choices=selectors.duration_choices_for(vms))
    maxima = [validation.readable_maximum(validation.policy_port(vm.ports, p["number"])) for vm in vms
              for p in vm.ports or []]
    if maxima and None not in maxima and int(min(maxima).total_seconds()) in dict(form.fields["duration"].choices):
        form.initial["duration"] = int(min(maxima).total_seconds())
    return form


def _request_all(request: HttpRequest) -> HttpResponse:
    """The form for every Configured VM the inventory's filter (``?all=1&q=…``, never the ids) matches now, with the
    same filterset and scope; those the user may not request are left out and said so. A request names at most
    ``REQUEST_MAX_VMS``: past that, back to the list to narrow the filter. The form names the VMs it shows, so
    sending it asks for exactly those (checked again, as any request)."""
    found = selectors.requestable_matching(request.user, request.GET, cap=REQUEST_MAX_VMS)
    back = reverse("policies:inventory") + "?" + urlencode([("tab", VmState.CONFIGURED), *found.query])
    if select_across.refused(request, found, cap=REQUEST_MAX_VMS, may="request access to",
                             limit="one request names", nothing="No VM matching the filter is left to request "
                                                               "access to."):
        return redirect(back)
    for message in found.left_out:
        messages.warning(request, message)
    return _form_page(request, _form(request, found.vms), found.vms, found)


def _without_gone(request: HttpRequest, vms: list[VirtualMachine], missing: set[int]) -> HttpResponse:
    """A form sent for VMs some of which may no longer be requested (JIT removed meanwhile): the form again for
    the others, with what was typed and a message naming those left out; nothing is asked for yet."""
    names = _names_or_404(request, missing)
    data = request.POST.copy()
    kept = {str(vm.pk) for vm in vms}
    data.setlist("vm", [pk for pk in data.getlist("vm") if pk in kept])
    data.setlist("ports", [p for p in data.getlist("ports") if p.split(":", 1)[0] in kept])
    form = _form(request, vms, data)
    form.is_valid()
    form.add_error(None, f"You can no longer request access to {', '.join(names)}: JIT is not enabled there any "
                         "more, or your role no longer allows requests there. Check the form and send it again for "
                         "the other VMs.")
    return _form_page(request, form, vms)


def _not_requestable(request: HttpRequest, missing: set[int]) -> HttpResponse:
    """Back to the Configured tab naming the VMs the user sees but may not request (JIT removed since the list was
    shown, or no requester role there); any VM they cannot see makes it a 404."""
    names = _names_or_404(request, missing)
    messages.error(request, f"You cannot request access to {', '.join(names)}: JIT is not enabled there (any "
                            "more), or your role does not allow requests there.")
    return redirect(reverse("policies:inventory") + "?tab=configured")


def _names_or_404(request: HttpRequest, missing: set[int]) -> list[str]:
    """The names of VMs the user sees but may not request; a 404 when any is one they cannot see."""
    names = sorted(vm_list(request.user).filter(pk__in=missing).values_list("name", flat=True))
    if len(names) != len(missing):
        raise Http404("No such object.")  # out of scope or unknown: all look alike
    return names


def _open_now(vms: list[VirtualMachine]) -> list[tuple[str, str, list[int]]]:
    """(VM, person, ports) open now on these VMs: a new request on one of those ports replaces that access."""
    found = selectors.open_access_by_vm(vms)
    return [(vm.name, name, ports) for vm in vms for name, ports in found.get(vm.pk, [])]


@requires(JIT_INITIATE, object_model=VirtualMachine)
@require_http_methods(["GET", "HEAD", "POST"])
def connect(request: HttpRequest, pk: int) -> HttpResponse:
    """A VM's Connect page: one click requests its policy's ports for my IP for the ports' maximum time."""
    vm = selectors.requestable_vm(request.user, pk)
    enabled = vm.jit_enabled
    # JIT configured on a subscription that has lost Defender for Servers Plan 2: Azure opens nothing there.
    unavailable = vm.subscription.defender_missing_message if enabled and vm.subscription.defender_missing else ""
    context = {"title": f"Connect to {vm.name}", "vm": vm, "enabled": enabled, "unavailable": unavailable,
               "may_configure": authz.has_permission(request.user, JIT_POLICY_WRITE, vm.resource_id)}
    if enabled and not unavailable:
        form = _form(request, [vm])
        defaults = _connect_defaults(vm, form)
        if request.method == "POST":
            sent = {**defaults, "token": "", **request.POST.dict(), "ports": defaults["ports"]}  # token: as sent
            form = AccessRequestForm(sent, vms=[vm], my_ip=form.my_ip,
                                     duration_choices=form.fields["duration"].choices)
            if form.is_valid():
                response = _submit(request, form, each_port_maximum=True)
                if response is not None:
                    return response
        context.update(form=form, defaults=defaults, my_ip=form.my_ip, windows=_connect_windows(vm),
                       source_refused=_source_refused(vm, form.my_ip) if not form.is_bound else [],
                       open_now=_open_now([vm]), shown_fields=CONNECT_FIELDS, edit=EDIT,
                       full_form=reverse("policies:request_new"))
    return render(request, "policies/access/connect.html", context,
                  status=400 if request.method == "POST" else 200)


# The one field the Connect page shows, by the id of its box; an error at another (a port, the source, the time) is
# listed as one the page cannot change, with a button sending what was typed to the full request form.
CONNECT_FIELDS = {"justification": "connect-justification"}


def _source_refused(vm: VirtualMachine, my_ip) -> list[str]:
    """Why the policy of ``vm`` refuses my IP on its ports (nothing when it allows it on every one): the Connect page
    says so before its one click is sent and refused."""
    if my_ip is None:
        return []
    refused = []
    for port in vm.ports:
        try:
            validation.validate_source(my_ip.prefix, validation.policy_port(vm.ports, port["number"]), vm.name)
        except ValidationError as exc:
            refused.extend(exc.messages)
    return refused


def _connect_windows(vm: VirtualMachine) -> list[tuple[int, str]]:
    """(port, its maximum request time in words): what the Connect page asks for each port."""
    windows = []
    for port in vm.ports:
        rule = validation.policy_port(vm.ports, port["number"])
        maximum = validation.readable_maximum(rule)
        windows.append((rule.number, validation.window_label(maximum) if maximum is not None else
                        f"a maximum the portal cannot read (Azure holds '{rule.max_duration}')"))
    return windows


def _connect_defaults(vm: VirtualMachine, form: AccessRequestForm) -> dict:
    """The policy's defaults: every port, my IP, each port for its own maximum time (the longest is asked for,
    and ``each_port_maximum`` trims the others), and "Connect to <VM>" as the justification unless a rule's pattern
    (a ticket id) would refuse it: then none, for the requester to write what the rule's hint asks."""
    longest = max((validation.readable_maximum(validation.policy_port(vm.ports, p["number"])) or timedelta(0)
                   for p in vm.ports), default=timedelta(0)) or timedelta(hours=1)
    justification = f"Connect to {vm.name}"
    if approvals.check_justification(justification, form.justification_rules):
        justification = ""
    return {"ports": [value for value, _ in form.fields["ports"].choices], "source_kind": "my_ip",
            "duration": int(longest.total_seconds()), "token": form.initial.get("token") or new_token(),
            "justification": justification}


# The request page and its status: the requester, whoever may see the request (``selectors.request_get``: an
# auditor too, at one of its VMs, read only), and its approvers (``selectors.review_get``: an approver at one of its
# VMs, who is sent its notifications' links), who read it as on the review page: without the requester's connection
# details.
@requires(JIT_INITIATE, REQUEST_APPROVE, AUDIT_READ, object_model=AccessRequest, owner_field="requester")
@require_safe
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One request: per VM and port its state, time left, connection details; Close now and Extend (as the user's
    role allows). An approver who may only review it reads it without the connection details, with a link to
    decide while they may."""
    access, review = selectors.request_or_review_get(request.user, pk)
    view = selectors.request_view(access, request.user, review=review)
    timeline = any(authz.has_permission(request.user, AUDIT_READ, row.vm.arm_id) for row in access.vms.all())
    extend_form = _extend_form(access, view)
    return render(request, "policies/access/request_detail.html", {
        "title": f"Request #{access.pk}", "access": access, "extend_form": extend_form,
        "extendable": _extendable(extend_form), "may_see_timeline": timeline, "review": review, **view})


GONE = ('<div id="request-status" class="request-status"><p class="errornote">You can no longer see this request '
        '(your role or scope changed, or you signed in as someone else). Reload the page.</p></div>')


def _stop_polling_when_gone(view):
    """A poll of a request the user may no longer see answers htmx's "stop polling" (286) with a note, instead of
    a 404 that the page would ask for again and again."""
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Http404:
            if getattr(request, "htmx", False):
                return HttpResponseStopPolling(GONE)
            raise
    return wrapper


@_stop_polling_when_gone
@requires(JIT_INITIATE, REQUEST_APPROVE, AUDIT_READ, object_model=AccessRequest, owner_field="requester")
@require_safe
def request_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The request's live part, polled by htmx while something is moving (``selectors.poll_interval``). When
    Extend comes or goes, or its form replaces the reason it offered no time range (the page says what it shows in
    ``?extendable=``, ``_extendable``), the form is swapped in or out beside it (out of band), so the page never
    reloads and a poll never resets a choice being made in the form. When
    the state differs from the one the page shows (``?state=``), the new state is written into the page's
    polite live region, so screen readers announce it once (the swapped status itself is not a live region)."""
    access, review = selectors.request_or_review_get(request.user, pk)
    view = selectors.request_view(access, request.user, review=review)
    shown = request.GET.get("extendable")
    extend_form, extendable = None, "1" if view["may_extend"] else "0"
    if shown in ("0", "1", "2") and ((shown != "0") != view["may_extend"] or shown == "2"):
        extend_form = _extend_form(access, view)  # came, went, or may offer a time range now
        extendable = _extendable(extend_form)
    elif shown in ("0", "1", "2"):
        extendable = shown
    extend_changed = shown in ("0", "1", "2") and extendable != shown
    shown_state = request.GET.get("state")
    return render(request, "policies/access/_request_status.html", {
        "access": access, "review": review, "extend_changed": extend_changed, "extendable": extendable,
        "state_changed": bool(shown_state) and shown_state != access.state,
        "extend_form": extend_form if extend_changed else None, **view})


@requires(JIT_INITIATE, REQUEST_APPROVE, AUDIT_READ, object_model=AccessRequest, owner_field="requester")
@require_POST
def request_close(request: HttpRequest, pk: int) -> HttpResponse:
    """Close now: ends access early (new connections refused; established ones are not cut). The requester may
    close their own whatever their role now (closing only reduces exposure); extending needs the role. Anyone else
    who may read the request (its approvers and auditors too) is told who may close it."""
    access, _ = selectors.request_or_review_get(request.user, pk)
    opened = any(port.opened_at for row in access.vms.all() for port in row.ports.all())  # prefetched
    closing = access.state == PortState.OPEN and access.closed_at is not None  # Close now pressed before
    try:
        services.request_close(actor=request.user, request=access)
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    else:
        if closing:
            messages.info(request, f"Request #{access.pk} is already closing: this page shows it closed once the "
                                   "portal has removed its access in Azure.")
        else:
            messages.success(request, f"Closing request #{access.pk}." if opened else _cancelled(access))
    return redirect("policies:request_detail", pk=access.pk)


def _cancelled(access: AccessRequest) -> str:
    """What cancelling says: an extension's original, still open, stays open until its own end."""
    original = selectors.original_open(access)
    if original is None:
        return f"Request #{access.pk} cancelled."
    return (f"Extension #{access.pk} cancelled; request #{original.pk} stays open until its own end, "
            f"{zoned_text(original.end_at)}.")


def _extendable(form: ExtendForm | None) -> str:
    """What the page's Extend slot shows, as its polls say it (``?extendable=``): ``0`` nothing, ``1`` the form,
    ``2`` why it offers no time range now (a poll swaps the form in once it does)."""
    return "0" if form is None else "2" if form.unavailable else "1"


def _extend_form(access: AccessRequest, view: dict) -> ExtendForm | None:
    if not view["may_extend"]:
        return None
    now = timezone.now()
    choices = selectors.extend_choices(access, now=now)
    return ExtendForm(duration_choices=choices, unavailable="" if choices else selectors.extend_refusal(access, now))


@requires(JIT_INITIATE, REQUEST_APPROVE, AUDIT_READ, object_model=AccessRequest)
@require_POST
def request_extend(request: HttpRequest, pk: int) -> HttpResponse:
    """Extend: ask again for the same ports, ending later (within each port's maximum from now). Anyone else who
    may read the request (its approvers and auditors too) is told only the requester may extend it."""
    access, _ = selectors.request_or_review_get(request.user, pk)
    try:
        services.ensure_may_extend(request.user, access)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
        return redirect("policies:request_detail", pk=access.pk)
    form = ExtendForm(request.POST, duration_choices=selectors.extend_choices(access))
    if not form.is_valid():
        messages.error(request, " ".join(form.non_field_errors()) or "Choose a time range.")
        return redirect("policies:request_detail", pk=access.pk)
    try:
        extension, _ = services.request_extend(
            actor=request.user, original=access, duration=timedelta(seconds=form.cleaned_data["duration"]),
            idempotency_key=form.cleaned_data["token"], client_ip=client_ip(request.META))
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        return redirect("policies:request_detail", pk=access.pk)
    messages.success(request, f"Extending request #{access.pk}.")
    return redirect("policies:request_detail", pk=extension.pk)


@authenticated_only
@require_safe
def request_list(request: HttpRequest) -> HttpResponse:
    """My requests (policy admins and auditors: every request in their scope), with filters, sorts and keyset pages
    (``after`` / ``before`` cursors: a page costs the same at any depth; nothing counts the matches). A cursor the
    list did not give shows the first page, saying so."""
    # The rows show the requester's stored name: no join to the users, which would give the planner a plan that
    # walks every user's requests and sorts them, rather than a sort index.
    queryset = selectors.request_list(request.user).select_related(None).prefetch_related(
        Prefetch("vms", queryset=AccessRequestVm.objects.only("id", "request_id", "vm_name", "vm_arm_id")),
        Prefetch("ports", queryset=AccessRequestPort.objects.only(  # when its access ends or ended, its window
            "id", "request_id", "state", "end_at", "opened_at", "finished_at", "duration_seconds")))
    filterset = AccessRequestFilterSet(request.GET or None, queryset=queryset, user=request.user)
    everyone, may_ask = selectors.sees_everyones(request.user), authz.holds_anywhere(request.user, JIT_INITIATE)
    filtered = any(request.GET.get(name, "").strip() for name in filterset.filters)
    table = AccessRequestTable(filterset.qs, empty_text=(
        "No requests match." if filtered else "No requests in your scope yet." if everyone
        else "You have not requested access yet." if may_ask else "You have no requests."))
    RequestConfig(request, paginate=False).configure(table)  # the sort
    key, descending = table.seek_key()
    page, cursor_error, query = seek_list_page(request, table.data.data, key=key, descending=descending,
                                               per_page=PER_PAGE)
    table.seek = page
    return render(request, "policies/access/request_list.html", {
        "title": "Requests", "table": table, "filter": filterset, "everyone": everyone, "page": page,
        "query": query, "cursor_error": cursor_error, "by_time": key == "created_at" and descending,
        "page_size": seek_page_size_choice(request, page, default=PER_PAGE),
        "new_url": reverse("policies:request_new") if may_ask else None,
        "no_role_contact": no_role_contact(request.user)})
