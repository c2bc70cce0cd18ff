"""Audit search pages."""
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def search(request: HttpRequest) -> HttpResponse:
    """Search JIT activity: the Azure Activity Log and the portal's own trail."""
    return render(request, "audit/search.html", {"title": "Audit"})
