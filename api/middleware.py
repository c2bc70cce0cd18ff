"""Unknown URLs under ``/api/`` answer the API's JSON 404, whatever ``DEBUG`` says; the site keeps its HTML 404."""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import is_valid_path
from rest_framework.response import Response

API_PREFIX = "/api/"
NOT_FOUND = "Not found."
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def is_html_not_found(request: HttpRequest, response: HttpResponse) -> bool:
    """A 404 under ``/api/`` (after any script prefix) that no API view answered: Django's page (its debug page
    when ``DEBUG``)."""
    return (response.status_code == 404 and request.path_info.startswith(API_PREFIX)
            and not isinstance(response, Response | JsonResponse))


class ApiNotFoundMiddleware:
    """Turns the HTML 404 of an unmatched ``/api/`` URL into ``{"detail", "errors"}`` like every API error.

    Listed above ``CommonMiddleware``, so ``APPEND_SLASH`` still redirects ``GET /api/v1/vms`` first. A write to
    an API URL without its trailing slash is refused here instead: the redirect would make clients send it again
    as a GET (and with ``DEBUG`` Django raises), so a caller could take a listing for the write it meant.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if (path.startswith(API_PREFIX) and not path.endswith("/") and request.method not in SAFE_METHODS
                and is_valid_path(f"{path}/", getattr(request, "urlconf", None))):
            detail = f"API URLs end with a slash: send this {request.method} to {request.path}/."
            return JsonResponse({"detail": detail, "errors": [detail]}, status=404)
        response = self.get_response(request)
        if is_html_not_found(request, response):
            return JsonResponse({"detail": NOT_FOUND, "errors": [NOT_FOUND]}, status=404)
        return response
