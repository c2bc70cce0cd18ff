"""URLs of access requests (included into the ``policies`` namespace at the site root)."""
from django.urls import path

from . import views

urlpatterns = [
    path("requests/", views.request_list, name="requests"),
    path("requests/new/", views.request_new, name="request_new"),
    path("requests/<int:pk>/", views.request_detail, name="request_detail"),
    path("requests/<int:pk>/status/", views.request_status, name="request_status"),
    path("requests/<int:pk>/close/", views.request_close, name="request_close"),
    path("requests/<int:pk>/extend/", views.request_extend, name="request_extend"),
    path("inventory/vm/<int:pk>/connect/", views.connect, name="connect"),
]
