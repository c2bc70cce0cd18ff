from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts import services
from accounts.forms import BreakGlassAdminAuthenticationForm, RoleMappingForm

from .models import RoleMapping, SignInClaims, User

admin.site.login_form = BreakGlassAdminAuthenticationForm


class SignInClaimsInline(admin.StackedInline):
    model = SignInClaims
    can_delete = False
    readonly_fields = ("tenant_id", "app_roles", "groups", "signed_in_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "display_name", "email", "entra_tenant_id", "is_staff", "is_active")
    search_fields = ("username", "display_name", "email", "entra_object_id")
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        ("Entra ID", {"fields": ("display_name", "entra_tenant_id", "entra_object_id")}),
    )
    inlines = [SignInClaimsInline]


@admin.register(RoleMapping)
class RoleMappingAdmin(admin.ModelAdmin):
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
