"""Pages of the accounts app: sign-in and sign-out, "My access", and the role mappings under Settings."""
from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_tables2 import RequestConfig

from accounts import selectors, services
from accounts.access import authenticated_only, public, requires
from accounts.authz import get_for_user_or_404
from accounts.config import ENTRA_PROVIDER_ID
from accounts.filtersets import RoleMappingFilterSet
from accounts.forms import BreakGlassAuthenticationForm, RoleMappingForm
from accounts.models import RoleMapping
from accounts.roles import SETTINGS_WRITE
from accounts.tables import RoleMappingTable


def _client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


class SignInView(LoginView):
    """The sign-in page: "Sign in with Entra ID", and the break-glass password form below it."""

    template_name = "registration/login.html"
    authentication_form = BreakGlassAuthenticationForm

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs)
        context["title"] = "Sign in"
        context["entra_configured"] = bool(settings.SOCIALACCOUNT_PROVIDERS.get("openid_connect"))
        context["entra_login_url"] = reverse("openid_connect_login", kwargs={"provider_id": ENTRA_PROVIDER_ID})
        return context


sign_in = public(SignInView.as_view())


@public
@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """End the portal session (POST only, CSRF-protected)."""
    was_signed_in = request.user.is_authenticated
    logout(request)
    if was_signed_in:
        messages.info(request, "You have signed out of the portal.")
    return redirect(settings.LOGOUT_REDIRECT_URL)


@authenticated_only
def my_access(request: HttpRequest) -> HttpResponse:
    """The user's roles, the scopes they apply at, and which mapping and claim each came from."""
    access = selectors.my_access(request.user)
    return render(request, "accounts/my_access.html", {"title": "My access", "access": access})


@requires(SETTINGS_WRITE)
def role_mapping_list(request: HttpRequest) -> HttpResponse:
    """Role mappings at the scopes the user administers, searchable and paginated."""
    filterset = RoleMappingFilterSet(request.GET, queryset=selectors.role_mapping_list(request.user))
    table = RoleMappingTable(filterset.qs)
    RequestConfig(request, paginate={"per_page": 50}).configure(table)
    return render(request, "accounts/rolemapping_list.html",
                  {"title": "Role mappings", "table": table, "filter": filterset})


@requires(SETTINGS_WRITE)
@require_http_methods(["GET", "POST"])
def role_mapping_create(request: HttpRequest) -> HttpResponse:
    """Add a mapping from an Entra app role or group to a portal role at a scope."""
    form = RoleMappingForm(request.POST or None, actor=request.user)
    if request.method == "POST" and form.is_valid():
        mapping = services.role_mapping_create(actor=request.user, client_ip=_client_ip(request),
                                               **form.cleaned_data)
        messages.success(request, f"Added: {mapping}.")
        return redirect("accounts:rolemapping_list")
    return render(request, "accounts/rolemapping_form.html", {"title": "Add role mapping", "form": form})


@requires(SETTINGS_WRITE, object_model=RoleMapping)
@require_http_methods(["GET", "POST"])
def role_mapping_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a mapping the user administers."""
    mapping = get_for_user_or_404(RoleMapping.objects.all(), request.user, SETTINGS_WRITE, pk=pk)
    form = RoleMappingForm(request.POST or None, instance=mapping, actor=request.user)
    if request.method == "POST" and form.is_valid():
        services.role_mapping_update(actor=request.user, mapping=mapping, client_ip=_client_ip(request),
                                     **form.cleaned_data)
        messages.success(request, f"Saved: {mapping}.")
        return redirect("accounts:rolemapping_list")
    return render(request, "accounts/rolemapping_form.html",
                  {"title": "Change role mapping", "form": form, "mapping": mapping})


@requires(SETTINGS_WRITE, object_model=RoleMapping)
@require_http_methods(["GET", "POST"])
def role_mapping_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Confirm (GET) and delete (POST) a mapping the user administers."""
    mapping = get_for_user_or_404(RoleMapping.objects.all(), request.user, SETTINGS_WRITE, pk=pk)
    if request.method == "POST":
        label = str(mapping)
        services.role_mapping_delete(actor=request.user, mapping=mapping, client_ip=_client_ip(request))
        messages.success(request, f"Deleted: {label}.")
        return redirect("accounts:rolemapping_list")
    return render(request, "accounts/rolemapping_delete.html", {"title": "Delete role mapping", "mapping": mapping})
