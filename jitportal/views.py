"""Project-level pages: the dashboard, the settings index and the health check."""
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseServerError, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.urls import reverse
from django.utils.html import escape
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from accounts import authz
from accounts.access import authenticated_only, public, requires
from accounts.roles import JIT_INITIATE, SETTINGS_WRITE
from accounts.selectors import no_role_contact
from jitportal.lib.health import check_broker, check_database
from notifications.selectors import events_waiting


@authenticated_only
@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    """The landing page: the user's open access, recent requests, what waits for their approval, and for policy
    admins and auditors the requests per state in their scope; for a user without a role, whom to ask for one."""
    from policies.access import selectors as access

    open_ports = access.my_open_ports(request.user)
    return render(request, "jitportal/dashboard.html", {
        "title": "Dashboard", "open_ports": open_ports, "open_poll_every": access.open_access_poll(open_ports),
        **_opened_in_azure(request.user),
        "recent": access.recent_requests(request.user), "state_counts": access.state_count_rows(request.user),
        "finished_counted_days": access.FINISHED_COUNTED_DAYS,
        "to_approve": access.approval_queue(request.user).count(),
        "may_request": authz.holds_anywhere(request.user, JIT_INITIATE),
        "no_role_contact": no_role_contact(request.user)})


@authenticated_only
@require_safe
def dashboard_open_access(request: HttpRequest) -> HttpResponse:
    """The dashboard's "My open access" alone, which the dashboard polls (htmx) so that its time left counts down and
    ports that open or end show without a reload."""
    from policies.access import selectors as access

    open_ports = access.my_open_ports(request.user)
    return render(request, "jitportal/_open_access.html", {
        "open_ports": open_ports, "open_poll_every": access.open_access_poll(open_ports),
        **_opened_in_azure(request.user)})


AZURE_OPEN_NAMED = 3


def _opened_in_azure(user) -> dict:
    """What "My open access" says of access Azure listed as opened for the user outside the portal at the last
    sync (``azure_open``: up to ``AZURE_OPEN_NAMED`` VM names, each with the inventory's row of it, and how many
    more): the list above it holds the portal's requests only."""
    from policies.access import selectors as access

    names = access.my_access_opened_in_azure(user)
    inventory = reverse("policies:inventory")
    return {"azure_open_count": len(names), "azure_open": [
        (name, f"{inventory}?{urlencode({'tab': 'configured', 'q': name})}") for name in names[:AZURE_OPEN_NAMED]],
        "azure_open_more": max(len(names) - AZURE_OPEN_NAMED, 0),
        "azure_open_all": f"{inventory}?tab=configured"}


@requires(SETTINGS_WRITE)
@require_safe
def settings_index(request: HttpRequest) -> HttpResponse:
    """Entry point to the portal's settings pages."""
    return render(request, "jitportal/settings_index.html", {"title": "Settings"})


@public
@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Report database and broker reachability (200 when both answer, 503 otherwise) and, for information, access
    events the notifications worker has not taken."""
    checks = {
        "database": check_database(),
        "broker": check_broker(settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS),
    }
    healthy = all(reason is None for reason in checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {
            name: {"ok": reason is None, **({"error": reason} if reason else {})}
            for name, reason in checks.items()
        },
    }
    # Notifications only inform: a stopped notifications worker delays e-mail, it does not take the portal down.
    waiting, given_up = events_waiting() if checks["database"] is None else (0, 0)
    body["checks"]["notifications"] = {"ok": not (waiting or given_up), "waiting": waiting, "given_up": given_up}
    if waiting:
        body["checks"]["notifications"]["error"] = (
            f"{waiting} access event(s) not yet turned into e-mail and webhooks: is the notifications worker "
            f"consuming {settings.CELERY_NOTIFICATIONS_QUEUE}?")
    if settings.DEBUG:
        body["version"] = "dev"
    return JsonResponse(body, status=200 if healthy else 503)


def server_error(request: HttpRequest) -> HttpResponse:
    """The 500 page (``handler500``): the portal's look from a template that needs only the portal's name (no user,
    no database: what failed may be either); under the API, its JSON error shape."""
    if request.path_info.startswith("/api/"):
        detail = "The portal could not answer this request; the error is in its log."
        return JsonResponse({"detail": detail, "errors": [detail]}, status=500)
    return HttpResponseServerError(loader.render_to_string("500.html", {"portal_name": settings.PORTAL_NAME}))


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The 400 page (``handler400``) for a form Django refused before any view read it, one with more fields than
    ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` or larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE``: what to do, in the portal's look
    (under the API, its JSON error shape); nothing was done. Any other bad request (a Host not allowed, a malformed
    form), or one refused before the sign-in middleware ran (no ``request.user`` for the portal's look), gets
    Django's plain page, as ``400.html`` is the refused form's only."""
    if isinstance(exception, TooManyFieldsSent):
        detail = (f"The form sent more fields than the portal accepts ({settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,}), "
                  "so nothing was done. Go back and select fewer VMs or ports, then send it again.")
    elif isinstance(exception, RequestDataTooBig):
        detail = (f"The form sent is larger than the portal accepts ({settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024:,} "
                  "KiB), so nothing was done. Go back and send less at once.")
    else:
        return HttpResponseBadRequest(defaults.ERROR_PAGE_TEMPLATE % {"title": "Bad Request (400)", "details": ""})
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": detail, "errors": [detail]}, status=400)
    if not hasattr(request, "user"):
        return HttpResponseBadRequest(defaults.ERROR_PAGE_TEMPLATE % {"title": "Bad Request (400)",
                                                                      "details": escape(detail)})
    return render(request, "400.html", {"detail": detail}, status=400)
