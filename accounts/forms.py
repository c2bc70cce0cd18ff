"""Forms of the accounts app: the break-glass password form and the role mapping form."""
from __future__ import annotations

import math
import re

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache

from accounts import authz
from accounts.models import RoleMapping
from accounts.role_definitions import ASSIGNABLE_SCOPES, DEFAULT_SUFFIX, SUFFIX_PATTERN, SUFFIX_RULE, assignable_scope
from accounts.roles import AZURE_ROLE_NAMES, ROLES, SETTINGS_WRITE
from accounts.scopes import InvalidScope, normalize_scope
from policies.access.client_ip import client_address

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _failures_key(request) -> str:
    found = client_address(request.META) if request is not None else None
    return f"break-glass-failures:{found.address if found else ''}"


class PasswordAttemptsLimit:
    """For password forms: an address with ``BREAK_GLASS_MAX_FAILURES`` failed sign-ins is refused, without a
    password check, until ``BREAK_GLASS_LOCKOUT_SECONDS`` after its latest failure (no online guessing)."""

    def clean(self) -> dict:
        key = _failures_key(self.request)
        if cache.get(key, 0) >= settings.BREAK_GLASS_MAX_FAILURES:
            minutes = math.ceil(settings.BREAK_GLASS_LOCKOUT_SECONDS / 60)
            raise forms.ValidationError(f"Too many failed sign-ins from your address. Try again in {minutes} "
                                        "minutes.", code="throttled")
        try:
            return super().clean()
        except forms.ValidationError:
            cache.add(key, 0, settings.BREAK_GLASS_LOCKOUT_SECONDS)
            try:
                cache.incr(key)
            except ValueError:  # expired in between
                cache.set(key, 1, settings.BREAK_GLASS_LOCKOUT_SECONDS)
            # Database and file caches store an incremented value with their default timeout: set ours again.
            cache.touch(key, settings.BREAK_GLASS_LOCKOUT_SECONDS)
            raise


class BreakGlassAdminAuthenticationForm(PasswordAttemptsLimit, AdminAuthenticationForm):
    """The Django admin's sign-in, with the same limit on failed passwords."""


class BreakGlassAuthenticationForm(PasswordAttemptsLimit, AuthenticationForm):
    """Username and password, accepted only for superusers (the authentication backend enforces it)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": (
            "Please enter the correct username and password of the break-glass account. Everyone else signs "
            "in with Entra ID."
        ),
    }


class RoleMappingForm(forms.ModelForm):
    """Map an Entra app role or group to a portal role at a scope the editing user administers."""

    class Meta:
        model = RoleMapping
        fields = ["source_kind", "source_value", "tenant_id", "role", "scope", "description"]
        widgets = {
            "source_value": forms.TextInput(attrs={"size": 50}),
            "scope": forms.TextInput(attrs={"size": 100}),
            "description": forms.TextInput(attrs={"size": 80}),
        }

    def __init__(self, *args, actor, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor
        self.fields["source_value"].help_text = (
            f"An app role value of the portal's app registration ({', '.join(settings.ENTRA_APP_ROLES)}) or a "
            "group's object id."
        )

    def clean_source_value(self) -> str:
        value = self.cleaned_data["source_value"].strip()
        if not value:
            raise forms.ValidationError("Enter the app role value or the group's object id.")
        return value

    def clean_tenant_id(self) -> str:
        tenant = self.cleaned_data.get("tenant_id", "").strip().lower()
        if tenant and tenant not in {t.lower() for t in settings.ENTRA_ALLOWED_TENANTS}:
            raise forms.ValidationError(
                f"Tenant {tenant} is not one the portal accepts sign-ins from "
                f"({', '.join(settings.ENTRA_ALLOWED_TENANTS) or 'none configured'})."
            )
        return tenant

    def clean_scope(self) -> str:
        try:
            scope = normalize_scope(self.cleaned_data["scope"])
        except InvalidScope as exc:
            raise forms.ValidationError(str(exc)) from exc
        if not authz.has_permission(self.actor, SETTINGS_WRITE, scope):
            raise forms.ValidationError("You may only map roles at scopes you administer.")
        return scope

    def clean(self) -> dict:
        cleaned = super().clean()
        kind, value = cleaned.get("source_kind"), cleaned.get("source_value")
        if kind == RoleMapping.SourceKind.APP_ROLE and value and value not in settings.ENTRA_APP_ROLES:
            self.add_error(
                "source_value",
                f"{value!r} is not an app role of the portal's app registration. Known app roles: "
                f"{', '.join(settings.ENTRA_APP_ROLES)} (set ENTRA_APP_ROLES when the app defines more).",
            )
        if kind == RoleMapping.SourceKind.GROUP and value:
            if not _GUID.match(value.lower()):
                self.add_error("source_value", "A group is named by its object id (a GUID).")
            else:
                cleaned["source_value"] = value.lower()
        return cleaned


class RoleDefinitionForm(forms.Form):
    """What to generate least-privilege Azure custom roles for: scopes the user administers, roles, a suffix."""

    scopes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 100}), label="Assignable scopes",
        help_text=f"One per line: {ASSIGNABLE_SCOPES} (Azure assigns custom roles there, not at a VM).")
    roles = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, label="Roles",
        choices=[(name, ROLES[name].label) for name in AZURE_ROLE_NAMES], initial=list(AZURE_ROLE_NAMES))
    suffix = forms.RegexField(
        regex=rf"^{SUFFIX_PATTERN.pattern}$", required=False, initial=DEFAULT_SUFFIX, label="Name suffix",
        help_text='Appended to each role name: "JIT Requester (suffix)". Letters, digits, spaces, . _ -.',
        error_messages={"invalid": SUFFIX_RULE.capitalize()})

    def __init__(self, *args, actor, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor

    def clean_scopes(self) -> list[str]:
        scopes = []
        for line in self.cleaned_data["scopes"].replace(",", "\n").splitlines():
            if not line.strip():
                continue
            try:
                scope = assignable_scope(line)
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from exc
            if not authz.has_permission(self.actor, SETTINGS_WRITE, scope):
                raise forms.ValidationError(f"{scope}: you may only generate roles for scopes you administer.")
            scopes.append(scope)
        if not scopes:
            raise forms.ValidationError("Give at least one scope.")
        return list(dict.fromkeys(scopes))
