from allauth.account import admin as _account_admin  # noqa: F401 - registered first, to be replaced below
from allauth.account.models import EmailAddress
from allauth.socialaccount import admin as social_admin
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group

from accounts import services
from accounts.forms import BreakGlassAdminAuthenticationForm, RoleMappingForm
from jitportal.lib.admin import ReadOnlyAdmin, SafeQueryAdmin

from .models import RoleMapping, SignInClaims, User

admin.site.login_form = BreakGlassAdminAuthenticationForm

# The pages the portal does not use: its Entra ID app comes from the settings (one stored here would conflict with
# it), tokens are not stored, addresses come from Entra ID's claims, and roles from role mappings, not groups.
for _unused in (SocialApp, SocialToken, EmailAddress, Group):
    if admin.site.is_registered(_unused):
        admin.site.unregister(_unused)
admin.site.unregister(SocialAccount)


@admin.register(SocialAccount)
class SocialAccountAdmin(ReadOnlyAdmin, social_admin.SocialAccountAdmin):
    """Which Entra ID identity signs in as which user: shown, never changed here (a changed link would sign another
    person in as the user)."""


class SignInClaimsInline(admin.StackedInline):
    model = SignInClaims
    can_delete = False
    readonly_fields = ("tenant_id", "app_roles", "groups", "signed_in_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(User)
class UserAdmin(SafeQueryAdmin, BaseUserAdmin):
    list_display = ("username", "display_name", "email", "entra_tenant_id", "is_staff", "is_active")
    search_fields = ("username", "display_name", "email", "entra_object_id")
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        ("Entra ID", {"fields": ("display_name", "entra_tenant_id", "entra_object_id")}),
    )
    inlines = [SignInClaimsInline]


@admin.register(RoleMapping)
class RoleMappingAdmin(SafeQueryAdmin):
    list_display = ("source_kind", "source_value", "tenant_id", "role", "scope", "description", "updated_at")
    list_filter = ("source_kind", "role")
    search_fields = ("source_value", "scope", "description")
    readonly_fields = ("created_at", "created_by", "updated_at", "updated_by")

    def get_form(self, request, obj=None, change=False, **kwargs):
        actor = request.user

        class AdminRoleMappingForm(RoleMappingForm):
            def __init__(self, *args, **form_kwargs):
                super().__init__(*args, actor=actor, **form_kwargs)

        kwargs["form"] = AdminRoleMappingForm
        return super().get_form(request, obj, change, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        data = {k: form.cleaned_data[k] for k in RoleMappingForm.Meta.fields}
        if change:
            services.role_mapping_update(actor=request.user, mapping=obj, **data)
        else:
            saved = services.role_mapping_create(actor=request.user, **data)
            obj.pk = saved.pk

    def delete_model(self, request, obj) -> None:
        services.role_mapping_delete(actor=request.user, mapping=obj)

    def delete_queryset(self, request, queryset) -> None:
        for mapping in queryset:
            services.role_mapping_delete(actor=request.user, mapping=mapping)
