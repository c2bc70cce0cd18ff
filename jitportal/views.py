"""Project-level pages: the dashboard, the settings index and the health check."""
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from jitportal.lib.health import check_broker, check_database


def dashboard(request: HttpRequest) -> HttpResponse:
    """The landing page: the user's open access, recent requests and, for admins, counts."""
    return render(request, "jitportal/dashboard.html", {"title": "Dashboard"})


def settings_index(request: HttpRequest) -> HttpResponse:
    """Entry point to the portal's settings pages."""
    return render(request, "jitportal/settings_index.html", {"title": "Settings"})


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Report database and broker reachability: 200 when both answer, 503 otherwise."""
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
    if settings.DEBUG:
        body["version"] = "dev"
    return JsonResponse(body, status=200 if healthy else 503)
