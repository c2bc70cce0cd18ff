"""Top-level URL configuration."""
from django.contrib import admin
from django.urls import include, path

from api.pages import api_token_revoke, api_tokens
from jitportal import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("dashboard/open-access/", views.dashboard_open_access, name="dashboard_open_access"),
    path("settings/", views.settings_index, name="settings"),
    path("settings/role-mappings/", include("accounts.settings_urls")),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/me/tokens/", api_tokens, name="api_tokens"),
    path("accounts/me/tokens/<int:pk>/revoke/", api_token_revoke, name="api_token_revoke"),
    path("accounts/", include("accounts.urls")),
    path("", include("policies.urls")),
    path("audit/", include("audit.urls")),
    path("", include("notifications.urls")),
    path("api/", include("api.urls")),
    path("admin/", admin.site.urls),
]

handler400 = views.bad_request
handler500 = views.server_error
