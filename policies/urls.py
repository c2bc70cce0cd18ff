from django.urls import path

from . import views

app_name = "policies"
urlpatterns = [
    path("inventory/", views.inventory, name="inventory"),
    path("requests/", views.request_list, name="requests"),
]
