"""The site's 404 handler: JSON under ``/api/`` (what API clients parse), Django's page elsewhere."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404``: an unknown URL under ``/api/`` answers ``{"detail", "errors"}`` like every API error."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "errors": ["Not found."]}, status=404)
    return page_not_found(request, exception)
