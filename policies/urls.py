"""URLs of the inventory, VM, JIT policy and subscription pages (included at the site root)."""
from django.urls import include, path

from . import views

app_name = "policies"
urlpatterns = [
    path("", include("policies.access.urls")),  # access requests, the request form and the Connect page
    path("inventory/", views.inventory, name="inventory"),
    path("inventory/enable/", views.bulk_enable, name="bulk_enable"),
    path("inventory/sync/", views.sync_now, name="sync_now"),
    path("inventory/sync/status/", views.sync_status, name="sync_status"),
    path("inventory/vm/<int:pk>/", views.vm_detail, name="vm_detail"),
    path("inventory/vm/<int:pk>/jit/", views.policy_edit, name="policy_edit"),
    path("inventory/vm/<int:pk>/jit/enable/", views.vm_enable, name="vm_enable"),
    path("inventory/vm/<int:pk>/jit/remove/", views.vm_remove, name="vm_remove"),
    path("inventory/vm/<int:pk>/drift/accept/", views.drift_accept, name="drift_accept"),
    path("inventory/changes/<int:pk>/", views.change_status, name="change_status"),
    path("settings/subscriptions/", views.subscription_list, name="subscriptions"),
    path("settings/subscriptions/add/", views.subscription_add, name="subscription_add"),
    path("settings/subscriptions/<int:pk>/", views.subscription_edit, name="subscription_edit"),
    path("settings/subscriptions/<int:pk>/sync/", views.subscription_sync, name="subscription_sync"),
]
