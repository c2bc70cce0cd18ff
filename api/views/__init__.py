"""The REST API views (``/api/v1/``). Each view: check the HTTP shape, call a selector or a service, answer JSON.

Authorization is the pages': every class declares its rule (``api.access``), objects load through the same
selectors (``vm_get``, ``change_seen_get``, ``request_get``), writes go through the same services, which check the
caller's roles at the object's scope again. Objects out of scope answer 404, exactly like missing ones.

The views live in one module per resource (``me``, ``vms``, ``access_requests``, ``approvals``, ``audit``);
``base`` holds their base class and the answers the schema documents for all of them.
"""
from .access_requests import REQUEST_FILTERS, RequestCloseView, RequestDetailView, RequestExtendView, RequestListView
from .approvals import ApprovalQueueView, RequestApproveView, RequestDenyView
from .audit import AUDIT_FILTERS, CSV_TYPE, CURSOR_PARAMETERS, AuditEventListView, AuditExportView
from .base import (
    BAD_QUERY,
    BODY_ERRORS,
    ERRORS,
    KEY_REUSED,
    MADE_AT,
    NOT_ACCEPTABLE,
    NOT_FOUND,
    NUL_MESSAGE,
    QUEUED_AT,
    READ_ERRORS,
    SEEK_ERRORS,
    SEEK_PARAMETERS,
    THROTTLED,
    ApiView,
)
from .me import MeView
from .vms import VM_FILTERS, PolicyChangeView, VmDetailView, VmJitView, VmListView

__all__ = ["AUDIT_FILTERS", "BAD_QUERY", "BODY_ERRORS", "CSV_TYPE", "CURSOR_PARAMETERS", "ERRORS", "KEY_REUSED",
           "MADE_AT", "NOT_ACCEPTABLE", "NOT_FOUND", "NUL_MESSAGE", "QUEUED_AT", "READ_ERRORS", "REQUEST_FILTERS",
           "SEEK_ERRORS", "SEEK_PARAMETERS", "THROTTLED", "VM_FILTERS", "ApiView", "ApprovalQueueView",
           "AuditEventListView", "AuditExportView", "MeView", "PolicyChangeView", "RequestApproveView",
           "RequestCloseView", "RequestDenyView", "RequestDetailView", "RequestExtendView", "RequestListView",
           "VmDetailView", "VmJitView", "VmListView"]
