"""Top-level URL configuration."""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from jitportal import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("settings/", views.settings_index, name="settings"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("policies.urls")),
    path("audit/", include("audit.urls")),
    path("admin/", admin.site.urls),
]
