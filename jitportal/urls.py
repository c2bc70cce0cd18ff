"""Top-level URL configuration."""
from django.contrib import admin
from django.urls import include, path

from jitportal import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("settings/", views.settings_index, name="settings"),
    path("settings/role-mappings/", include("accounts.settings_urls")),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("accounts.urls")),
    path("", include("policies.urls")),
    path("audit/", include("audit.urls")),
    path("", include("notifications.urls")),
    path("admin/", admin.site.urls),
]
