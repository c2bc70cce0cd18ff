from django.urls import path

from . import views

app_name = "audit"
urlpatterns = [
    path("", views.search, name="search"),
    path("export.csv", views.export_csv, name="export"),
    path("activity/<int:pk>/", views.activity_event, name="activity_event"),
    path("trail/<int:pk>/", views.trail_event, name="trail_event"),
    path("timeline/", views.vm_timeline, name="vm_timeline"),
    path("ingestion/", views.ingestion_status, name="ingestion_status"),
]
