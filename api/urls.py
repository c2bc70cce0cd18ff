"""URLs of the REST API (``/api/``): the schema, its docs page, and version 1 of the API."""
from django.urls import path, register_converter
from django.utils.cache import patch_cache_control
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.request import Request
from rest_framework.response import Response

from . import views
from .access import api_public
from .negotiation import JsonErrorsMixin

app_name = "api"


class ObjectIdConverter:
    """Any integer (negative or huge too): an id that names nothing gets the API's JSON 404, not an HTML page."""

    regex = "-?[0-9]+"

    def to_python(self, value: str) -> int:
        number = int(value)
        return number if 0 < number < 2**63 else 0  # 0 names nothing; the database never sees an overflow

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(ObjectIdConverter, "object_id")


@api_public
class SchemaView(JsonErrorsMixin, SpectacularAPIView):
    """The OpenAPI 3 schema (public: it describes the API and holds no data), in YAML or JSON (``Accept`` or
    ``?format=``); its errors in the API's JSON."""


@api_public
class DocsView(JsonErrorsMixin, SpectacularSwaggerSplitView):
    """Swagger UI for the schema, served from the portal's own static files (no CDN); its errors in JSON. Its
    start-up script is fetched from this view (``?script``) and its styles from a static file, so the page runs under
    the portal's Content-Security-Policy, which refuses inline scripts and styles."""

    url_name = "api:schema"
    template_name = "api/swagger_ui.html"

    @extend_schema(exclude=True)
    def get(self, request: Request, *args, **kwargs) -> Response:
        """The page, or (``?script``) its start-up script, which holds the caller's CSRF token: only a page of the
        portal itself may load that script (``Cross-Origin-Resource-Policy``), and no cache keeps it."""
        response = super().get(request, *args, **kwargs)
        if request.GET.get("script") is not None:
            response["Cross-Origin-Resource-Policy"] = "same-origin"
            patch_cache_control(response, private=True, no_store=True)
        return response


urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", DocsView.as_view(), name="docs"),
    path("v1/me/", views.MeView.as_view(), name="me"),
    path("v1/vms/", views.VmListView.as_view(), name="vms"),
    path("v1/vms/<object_id:pk>/", views.VmDetailView.as_view(), name="vm"),
    path("v1/vms/<object_id:pk>/jit/", views.VmJitView.as_view(), name="vm_jit"),
    path("v1/policy-changes/<object_id:pk>/", views.PolicyChangeView.as_view(), name="policy_change"),
    path("v1/requests/", views.RequestListView.as_view(), name="requests"),
    path("v1/requests/<object_id:pk>/", views.RequestDetailView.as_view(), name="request"),
    path("v1/requests/<object_id:pk>/close/", views.RequestCloseView.as_view(), name="request_close"),
    path("v1/requests/<object_id:pk>/extend/", views.RequestExtendView.as_view(), name="request_extend"),
    path("v1/requests/<object_id:pk>/approve/", views.RequestApproveView.as_view(), name="request_approve"),
    path("v1/requests/<object_id:pk>/deny/", views.RequestDenyView.as_view(), name="request_deny"),
    path("v1/approvals/", views.ApprovalQueueView.as_view(), name="approvals"),
    path("v1/audit/events/", views.AuditEventListView.as_view(), name="audit_events"),
    path("v1/audit/events.csv", views.AuditExportView.as_view(), name="audit_export"),
]
