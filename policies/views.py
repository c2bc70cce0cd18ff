"""Inventory and access request pages."""
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def inventory(request: HttpRequest) -> HttpResponse:
    """VMs grouped Configured / Not configured / Unsupported."""
    return render(request, "policies/inventory.html", {"title": "Inventory"})


def request_list(request: HttpRequest) -> HttpResponse:
    """Access requests the user may see."""
    return render(request, "policies/request_list.html", {"title": "Requests"})
