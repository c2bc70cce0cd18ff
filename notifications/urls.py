"""URLs of notifications: preferences at /notifications/, webhooks under Settings."""
from django.urls import path

from . import views

app_name = "notifications"
urlpatterns = [
    path("notifications/preferences/", views.preferences, name="preferences"),
    path("settings/webhooks/", views.webhook_list, name="webhook_list"),
    path("settings/webhooks/add/", views.webhook_create, name="webhook_add"),
    path("settings/webhooks/<int:pk>/", views.webhook_detail, name="webhook_detail"),
    path("settings/webhooks/<int:pk>/edit/", views.webhook_edit, name="webhook_edit"),
    path("settings/webhooks/<int:pk>/toggle/", views.webhook_toggle, name="webhook_toggle"),
    path("settings/webhooks/<int:pk>/rotate-secret/", views.webhook_rotate, name="webhook_rotate"),
    path("settings/webhooks/<int:pk>/test/", views.webhook_test, name="webhook_test"),
    path("settings/webhooks/<int:pk>/delete/", views.webhook_delete, name="webhook_delete"),
]
