"""Role mappings and the Azure custom roles to assign, under Settings."""
from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("", views.role_mapping_list, name="rolemapping_list"),
    path("add/", views.role_mapping_create, name="rolemapping_add"),
    path("<int:pk>/", views.role_mapping_edit, name="rolemapping_edit"),
    path("<int:pk>/delete/", views.role_mapping_delete, name="rolemapping_delete"),
    path("azure-roles/", views.role_definitions, name="role_definitions"),
]
