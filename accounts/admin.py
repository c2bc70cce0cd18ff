from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "display_name", "email", "entra_tenant_id", "is_staff", "is_active")
    search_fields = ("username", "display_name", "email", "entra_object_id")
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        ("Entra ID", {"fields": ("display_name", "entra_tenant_id", "entra_object_id")}),
    )
