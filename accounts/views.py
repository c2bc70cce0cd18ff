"""Pages of the accounts app: sign-in and sign-out, "My access", and the role mappings under Settings."""
from __future__ import annotations

import json
import shlex

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import LoginView
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts import authz, revalidation, selectors, services
from accounts.access import authenticated_only, public, requires
from accounts.authz import get_for_user_or_404
from accounts.config import ENTRA_PROVIDER_ID
from accounts.filtersets import RoleMappingFilterSet
from accounts.forms import BreakGlassAuthenticationForm, RoleDefinitionForm, RoleMappingForm
from accounts.models import RoleMapping
from accounts.role_definitions import DEFAULT_SUFFIX, az_cli_definition, build_role_definitions
from accounts.roles import AZURE_ROLE_NAMES, SETTINGS_WRITE
from accounts.scopes import parse_scope
from accounts.tables import RoleMappingTable
from jitportal.lib.tables import paginate
from policies.access.client_ip import client_ip


class SignInView(LoginView):
    """The sign-in page: "Sign in with Entra ID", and the break-glass password form below it."""

    http_method_names = ["get", "head", "post"]  # LoginView takes a PUT as a POST of the password form
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
@require_safe
def my_access(request: HttpRequest) -> HttpResponse:
    """The user's roles, the scopes they apply at, and which mapping and claim each came from; without any, whom to
    ask for one."""
    access = selectors.my_access(request.user)
    contact = selectors.access_contact(request.user) if not (access.rows or access.is_superuser) else None
    return render(request, "accounts/my_access.html", {"title": "My access", "access": access,
                                                        "access_contact": contact,
                                                        "next_check": revalidation.next_check(access.claims)})


@requires(SETTINGS_WRITE)
@require_safe
def role_mapping_list(request: HttpRequest) -> HttpResponse:
    """Role mappings at the scopes the user administers, searchable and paginated."""
    filterset = RoleMappingFilterSet(request.GET, queryset=selectors.role_mapping_list(request.user))
    table = RoleMappingTable(filterset.qs)
    paginate(request, table, per_page=50)
    return render(request, "accounts/rolemapping_list.html",
                  {"title": "Role mappings", "table": table, "filter": filterset})


# The form checks that no such mapping exists; two admins saving the same one at once both pass that check.
SAME_MAPPING_ADDED = ("The same role mapping was added a moment ago (by another admin): nothing new was saved. "
                      "The list shows it.")


@requires(SETTINGS_WRITE)
@require_http_methods(["GET", "HEAD", "POST"])
def role_mapping_create(request: HttpRequest) -> HttpResponse:
    """Add a mapping from an Entra app role or group to a portal role at a scope."""
    form = RoleMappingForm(request.POST or None, actor=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            mapping = services.role_mapping_create(actor=request.user, client_ip=client_ip(request.META),
                                                   **form.cleaned_data)
        except IntegrityError:  # the same mapping added since the form checked (another admin, at that moment)
            form.add_error(None, SAME_MAPPING_ADDED)
        else:
            messages.success(request, f"Added: {mapping}.")
            return redirect("accounts:rolemapping_list")
    return render(request, "accounts/rolemapping_form.html", {"title": "Add role mapping", "form": form},
                  status=400 if request.method == "POST" else 200)


@requires(SETTINGS_WRITE, object_model=RoleMapping)
@require_http_methods(["GET", "HEAD", "POST"])
def role_mapping_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a mapping the user administers."""
    mapping = get_for_user_or_404(RoleMapping.objects.all(), request.user, SETTINGS_WRITE, pk=pk)
    form = RoleMappingForm(request.POST or None, instance=mapping, actor=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            services.role_mapping_update(actor=request.user, mapping=mapping, client_ip=client_ip(request.META),
                                         **form.cleaned_data)
        except RoleMapping.DoesNotExist:  # deleted since the page loaded it (another admin, at that moment)
            messages.error(request, "This role mapping was deleted a moment ago (by another admin): nothing was "
                                    "saved. Add it again if it is still needed.")
            return redirect("accounts:rolemapping_list")
        except IntegrityError:
            form.add_error(None, SAME_MAPPING_ADDED)
        else:
            messages.success(request, f"Saved: {mapping}.")
            return redirect("accounts:rolemapping_list")
    return render(request, "accounts/rolemapping_form.html",
                  {"title": "Change role mapping", "form": form, "mapping": mapping},
                  status=400 if request.method == "POST" else 200)


@requires(SETTINGS_WRITE, object_model=RoleMapping)
@require_http_methods(["GET", "HEAD", "POST"])
def role_mapping_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Confirm (GET) and delete (POST) a mapping the user administers."""
    mapping = get_for_user_or_404(RoleMapping.objects.all(), request.user, SETTINGS_WRITE, pk=pk)
    if request.method == "POST":
        label = str(mapping)
        services.role_mapping_delete(actor=request.user, mapping=mapping, client_ip=client_ip(request.META))
        messages.success(request, f"Deleted: {label}.")
        return redirect("accounts:rolemapping_list")
    return render(request, "accounts/rolemapping_delete.html", {"title": "Delete role mapping", "mapping": mapping})


def _jit_roles_args(data: dict) -> str:
    """The ``jit_roles`` arguments that create the same definitions as the form: its scopes, roles and suffix."""
    args = [arg for scope in data["scopes"] for arg in ("--scope", scope)]
    if set(data["roles"]) != set(AZURE_ROLE_NAMES):
        args += [arg for role in data["roles"] for arg in ("--role", role)]
    if data["suffix"].strip() != DEFAULT_SUFFIX:
        args += ["--suffix", data["suffix"].strip()]
    return shlex.join(args)


@requires(SETTINGS_WRITE)
@require_safe  # it only shows and downloads: nothing to post
def role_definitions(request: HttpRequest) -> HttpResponse:
    """Least-privilege Azure custom roles of the portal's Azure roles (the seed's ``Set-JitLeastPrivilegedRole``)
    for scopes the user administers: shown, and downloadable as JSON (``?download=<role>``) to create in Azure."""
    scopes = [s for s in authz.permitted_scopes(request.user, SETTINGS_WRITE) if s != authz.EVERYWHERE]
    form = RoleDefinitionForm(request.GET if "scopes" in request.GET else None, actor=request.user,
                              initial={"scopes": "\n".join(scopes)})
    definitions: dict[str, dict] = {}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        definitions = {name: az_cli_definition(definition) for name, definition in
                       build_role_definitions(data["scopes"], data["roles"], data["suffix"].strip()).items()}
        wanted = request.GET.get("download")
        if wanted in definitions:
            response = HttpResponse(json.dumps(definitions[wanted], indent=2) + "\n",
                                    content_type="application/json")
            response["Content-Disposition"] = f'attachment; filename="jit-{wanted.replace("_", "-")}.json"'
            return response
    query = request.GET.copy()
    files = []
    for name, definition in definitions.items():
        query["download"] = name
        files.append({"role": name, "name": definition["Name"], "query": query.urlencode(),
                      "file": f"jit-{name.replace('_', '-')}.json", "json": json.dumps(definition, indent=2)})
    chosen = form.cleaned_data["scopes"] if definitions else []
    return render(request, "accounts/role_definitions.html", {
        "title": "Azure custom roles", "form": form, "files": files,
        "command_args": _jit_roles_args(form.cleaned_data) if definitions else "",
        "subscription": parse_scope(chosen[0]).subscription_id if chosen else ""},
        status=400 if form.is_bound and not form.is_valid() else 200)
