"""Audit pages: search (Azure Activity Log and the portal's trail), event pages, CSV export, VM timeline,
ingestion status. Views stay short: selectors restrict, filtersets filter, keyset pagination pages."""
from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_safe

from accounts import authz
from accounts.access import requires
from accounts.roles import AUDIT_EXPORT, AUDIT_READ
from jitportal.lib.tables import rows_per_page, seek_page_size_choice
from policies.access.client_ip import client_ip

from . import selectors
from .callers import caller_label
from .csv_export import csv_lines, encoded, export_columns
from .filtersets import VM_FILTER_MAX_LENGTH, ActivityFilterSet, TrailFilterSet, foreign_filters, vm_ids_named
from .jit_events import vm_name
from .models import ActivityLogEvent, AuditEvent
from .pagination import KeysetPage, keyset_page
from .redaction import AuditScope
from .services import audit_record
from .tables import ActivityTable, TrailTable

REQUEST_PARAMETER_ERROR = "Give a request's number (such as 42) or its correlation id: nothing else names a request."
SOURCES = {"azure": "Azure Activity Log", "portal": "Portal audit trail"}


def _source(request: HttpRequest) -> tuple[str, str]:
    """The source the search reads (``?source=``, the Azure Activity Log by default) and, for a source the portal
    does not have, the message saying it was left out (as the other bad filters are)."""
    source = request.GET.get("source", "azure")
    if source in SOURCES:
        return source, ""
    shown = source if len(source) <= 40 else f"{source[:40]}…"
    choices = " or ".join(f"{key} ({label})" for key, label in SOURCES.items())
    return "azure", f"Source: {shown!r} is not one of the sources; choose {choices}. The filter was left out."


def _foreign_errors(request: HttpRequest, source: str) -> list[str]:
    """A message for each filter of the other source the query gives (the API refuses them), which this search
    leaves out."""
    other = SOURCES["azure" if source == "portal" else "portal"]
    return [f"{label}: filters only the {other}; this search reads the {SOURCES[source]}. The filter was left out."
            for _name, label in foreign_filters(source, request.GET)]


def _filtered(request: HttpRequest, source: str, action: str):
    if source == "portal":
        return TrailFilterSet(request.GET, queryset=selectors.trail_for_user(request.user, action))
    return ActivityFilterSet(request.GET, queryset=selectors.activity_for_user(request.user, action),
                             scopes=authz.permitted_scopes(request.user, action))


@require_safe
@requires(AUDIT_READ)
def search(request: HttpRequest) -> HttpResponse:
    """Search JIT activity: the Azure Activity Log and the portal's own trail, newest first, ``?per_page=`` events a
    page (``AUDIT_PAGE_SIZE`` unless chosen)."""
    source, source_error = _source(request)
    filterset = _filtered(request, source, AUDIT_READ)
    cursor_error = ""
    try:
        page = keyset_page(filterset.qs, after=request.GET.get("after"), before=request.GET.get("before"),
                           size=rows_per_page(request.GET.get("per_page"), settings.AUDIT_PAGE_SIZE))
    except ValidationError as error:  # a page link edited or cut short: say so, not the first page as if asked
        page, cursor_error = KeysetPage([], None, None), " ".join(error.messages)
    if source == "portal":  # a row about a portal request links to its page, for whoever may open it
        rows = selectors.with_request_links(request.user, selectors.trail_as_seen(request.user, page.rows))
    else:
        rows = selectors.activity_as_seen(request.user, page.rows)
    table = (TrailTable if source == "portal" else ActivityTable)(
        rows, subscription_names=selectors.subscription_names(row.subscription_id for row in rows))
    query = request.GET.copy()
    for key in ("after", "before"):
        query.pop(key, None)
    return render(request, "audit/search.html", {
        "title": "Audit", "subtitle": SOURCES[source], "source": source, "sources": SOURCES,
        "filter": filterset, "table": table, "page": page,
        # linked to the sources' links
        "source_errors": [(error, "#audit-sources") for error in [source_error, *_foreign_errors(request, source)]
                          if error],
        "query": query.urlencode(), "cursor_error": cursor_error,
        "page_size": seek_page_size_choice(request, page, default=settings.AUDIT_PAGE_SIZE),
        "can_export": authz.holds_anywhere(request.user, AUDIT_EXPORT),
        "vm_timeline_id": _timeline_vm(request.user, filterset.form.cleaned_data.get("vm") or ""),  # not one refused
    }, status=400 if cursor_error else 200)


def _timeline_vm(user, value: str) -> str:
    """The resource id of the one VM the search's VM filter names and ``user`` may audit ("" when it names none, or
    several: the VM timeline is one VM's)."""
    from policies.models import VirtualMachine

    found = [vm_id for vm_id in vm_ids_named(value) if authz.has_permission(user, AUDIT_READ, vm_id)]
    if len(found) != 1:
        return ""
    return VirtualMachine.objects.filter(resource_id=found[0]).values_list("arm_id", flat=True).first() or found[0]


# GET only: the export is audited, and Django would run this view for a HEAD too, recording an export of rows
# nobody received (the API's export answers a HEAD with the headers alone, ``api.views.audit``).
@require_GET
@requires(AUDIT_EXPORT)
def export_csv(request: HttpRequest) -> HttpResponse:
    """Download the current search as CSV (only rows in the user's export scopes); the export is audited."""
    source, source_error = _source(request)
    filterset = _filtered(request, source, AUDIT_EXPORT)
    foreign = _foreign_errors(request, source)
    if source_error or foreign or not filterset.is_valid():
        problems = [error.removesuffix(" The filter was left out.") for error in [source_error, *foreign] if error]
        problems += [f"{filterset.form[name].label}: {message}" if name in filterset.form.fields else message
                     for name, messages in filterset.errors.items() for message in messages]
        return HttpResponse(f"The search filters are not valid: {'; '.join(problems)}", status=400,
                            content_type="text/plain; charset=utf-8")
    audit_record(actor=request.user, action="audit.export", target_type="audit_search", target_label=SOURCES[source],
                 after={"source": source, "filters": filterset.applied()}, client_ip=client_ip(request.META))
    columns = export_columns(source, selectors.subscription_names())
    scope = AuditScope.of(request.user, AUDIT_EXPORT)
    response = StreamingHttpResponse(encoded(csv_lines(filterset.qs, columns, scope=scope)),
                                     content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="jit-{source}-activity-{stamp}.csv"'
    return response


@require_safe
@requires(AUDIT_READ, object_model=ActivityLogEvent)
def activity_event(request: HttpRequest, pk: int) -> HttpResponse:
    """One Activity Log entry: what a JIT initiate says (VMs, ports, source, end, who and why), its fields, its raw
    properties."""
    event = selectors.activity_for_user(request.user).filter(pk=pk).first()
    if event is None:
        raise Http404("No such event.")
    event = selectors.activity_as_seen(request.user, [event])[0]
    return render(request, "audit/activity_event.html", {
        "title": "Audit", "subtitle": "Activity Log event", "event": event, "caller": caller_label(event.caller),
        "jit": selectors.initiate_details(request.user, event),
        "timelines": [(vm, vm_name(vm)) for vm in event.vm_id_list
                      if authz.has_permission(request.user, AUDIT_READ, vm)],
        "subscription_name": selectors.subscription_names([event.subscription_id]).get(event.subscription_id.lower()),
        "raw_json": json.dumps(event.raw or event.properties, indent=2, sort_keys=True, default=str),
        "properties_json": json.dumps(event.properties, indent=2, sort_keys=True, default=str),
    })


@require_safe
@requires(AUDIT_READ, object_model=AuditEvent)
def trail_event(request: HttpRequest, pk: int) -> HttpResponse:
    """One event of the portal's own trail, with its state before and after, and a link to the portal request it is
    about when the user may open that request's page."""
    event = selectors.trail_for_user(request.user).filter(pk=pk).first()
    if event is None:
        raise Http404("No such event.")
    event = selectors.with_request_links(request.user, selectors.trail_as_seen(request.user, [event]))[0]
    return render(request, "audit/trail_event.html", {
        "title": "Audit", "subtitle": "Portal audit event", "event": event,
        "subscription_name": selectors.subscription_names([event.subscription_id]).get(event.subscription_id.lower()),
        "before_json": json.dumps(event.before, indent=2, sort_keys=True, default=str),
        "after_json": json.dumps(event.after, indent=2, sort_keys=True, default=str),
    })


@require_safe
@requires(AUDIT_READ)
def vm_timeline(request: HttpRequest) -> HttpResponse:
    """Who opened what, from where, why, and when it closed, for one VM (``?vm=`` its resource id, or its name when
    one VM the user may audit has it; several get a page to choose one) or one access request (``?request=<number or
    correlation id>``): portal events joined to the Azure calls they caused and the rules written."""
    named = request.GET.get("request", "").strip()
    if named:
        return _request_timeline(request, named)
    vm_id = request.GET.get("vm", "").strip()
    if len(vm_id) > VM_FILTER_MAX_LENGTH:  # as the search's VM filter (SQLite refuses a LIKE pattern over 50,000 bytes)
        return render(request, "audit/timeline.html", {
            "title": "Audit", "subtitle": "VM timeline", "vm_name": "a VM", "entries": [],
            "error": f"Give a VM's name or resource id of at most {VM_FILTER_MAX_LENGTH} characters (this one has "
                     f"{len(vm_id)})."}, status=400)
    if vm_id and not vm_id.startswith("/"):  # a VM's name, as typed: the one VM of that name the user may audit
        named = selectors.audited_vms_named(request.user, vm_id)
        if len(named) > 1:
            return render(request, "audit/timeline_choose.html", {
                "title": "Audit", "subtitle": "VM timeline", "name": vm_id, "vms": named})
        vm_id = named[0].arm_id if named else ""
    if not vm_id or "\x00" in vm_id or not authz.has_permission(request.user, AUDIT_READ, vm_id):  # PostgreSQL: no NUL
        raise Http404("No such virtual machine.")
    entries = selectors.vm_timeline(request.user, vm_id)
    return render(request, "audit/timeline.html", {
        "title": "Audit", "subtitle": "VM timeline", "vm_id": vm_id,
        "vm_name": vm_name(vm_id), "entries": entries,
    })


def _request_timeline(request: HttpRequest, value: str) -> HttpResponse:
    """The timeline of exactly the request ``value`` names; a value that names no request at all is a 400."""
    context = {"title": "Audit", "subtitle": "Request timeline", "vm_name": "a request", "entries": []}
    try:
        correlation = selectors.request_correlation(value)
    except ValueError:
        return render(request, "audit/timeline.html", {**context, "error": REQUEST_PARAMETER_ERROR}, status=400)
    entries = selectors.request_timeline(request.user, correlation) if correlation else []
    if not entries:
        raise Http404("No such request.")
    linked = next((event.request_pk for entry in entries for event in entry.portal_events if event.request_pk), None)
    return render(request, "audit/timeline.html", {
        **context, "request_correlation": correlation, "vm_name": f"request {value}", "entries": entries,
        "request_pk": linked})


@require_safe
@requires(AUDIT_READ)
def ingestion_status(request: HttpRequest) -> HttpResponse:
    """Activity Log ingestion per subscription: watermark, progress, last success, last error."""
    return render(request, "audit/ingestion_status.html", {
        "title": "Audit", "subtitle": "Ingestion status",
        "states": selectors.ingestion_states_for_user(request.user),
        "interval": settings.AUDIT_INGEST_INTERVAL_SECONDS,
    })
