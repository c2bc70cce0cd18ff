"""URLs of access requests (included into the ``policies`` namespace at the site root)."""
from django.urls import path

from . import approval_views, views

urlpatterns = [
    path("requests/", views.request_list, name="requests"),
    path("requests/new/", views.request_new, name="request_new"),
    path("requests/<int:pk>/", views.request_detail, name="request_detail"),
    path("requests/<int:pk>/status/", views.request_status, name="request_status"),
    path("requests/<int:pk>/close/", views.request_close, name="request_close"),
    path("requests/<int:pk>/extend/", views.request_extend, name="request_extend"),
    path("requests/<int:pk>/review/", approval_views.request_review, name="request_review"),
    path("requests/<int:pk>/decide/", approval_views.request_decide, name="request_decide"),
    path("approvals/", approval_views.approval_queue, name="approvals"),
    path("settings/access-rules/", approval_views.rule_list, name="rules"),
    path("settings/access-rules/new/", approval_views.rule_new, name="rule_new"),
    path("settings/access-rules/<int:pk>/", approval_views.rule_edit, name="rule_edit"),
    path("settings/access-rules/<int:pk>/delete/", approval_views.rule_delete, name="rule_delete"),
    path("inventory/vm/<int:pk>/connect/", views.connect, name="connect"),
]
