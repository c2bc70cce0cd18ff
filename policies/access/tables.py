"""The Requests list as a django-tables2 table."""
from __future__ import annotations

import django_tables2 as tables
from django.utils import timezone
from django.utils.html import format_html

from jitportal.lib.tables import NOWRAP, SortableTable, local_minute

from .approvals import overdue
from .models import AccessRequest, ApprovalState, PortState


class AccessRequestTable(SortableTable):
    id = tables.Column(linkify=("policies:request_detail", {"pk": tables.A("pk")}), verbose_name="#")
    # The id breaks ties, so pages neither repeat nor skip requests stored in the same instant.
    created_at = tables.Column(attrs=NOWRAP, verbose_name="Requested", order_by=("created_at", "id"))
    requester_name = tables.Column(verbose_name="Requester")
    vms = tables.Column(empty_values=(), orderable=False, verbose_name="VMs")
    source_prefix = tables.Column(verbose_name="Source")
    end_at = tables.Column(attrs=NOWRAP, verbose_name="Ends")
    state = tables.Column(verbose_name="State")
    kind = tables.Column(verbose_name="Kind")

    class Meta:
        model = AccessRequest
        fields = ("id", "created_at", "requester_name", "vms", "source_prefix", "end_at", "state", "kind")
        order_by = ("-created_at",)
        attrs = {"id": "request-table", "class": "requests"}
        row_attrs = {"data-request": lambda record: record.pk}
        empty_text = "No requests match."

    def render_vms(self, record: AccessRequest) -> str:
        """The VMs the viewer may see (``selectors.vm_rows_shown``), and how many others the request has."""
        from .selectors import vm_rows_shown

        shown, hidden = vm_rows_shown(record, self.request.user)
        names = ", ".join(sorted({row.vm_name for row in shown}))
        return f"{names} (+{hidden} outside your scope)" if hidden else names

    def render_end_at(self, value, record: AccessRequest) -> str:
        """The planned end; awaiting approval (and not scheduled) it is not known yet: the window starts at the last
        approval; denied, failed or not approved in time (or past its approval deadline), nothing opened, so nothing
        ends."""
        if overdue(record, timezone.now()):
            return "Did not open"
        if record.state == PortState.PENDING and not record.scheduled_start:
            return "after approval"
        if record.state in (PortState.DENIED, PortState.FAILED) or record.approval_state == ApprovalState.EXPIRED:
            return "Did not open"
        return local_minute(value)

    def render_created_at(self, value) -> str:
        return local_minute(value)

    def render_state(self, value, record: AccessRequest):
        """The state; one past its approval deadline as the reconcile will mark it (``selectors.in_shown_state``)."""
        if overdue(record, timezone.now()):
            return format_html('<span class="access-state access-{}">{}</span>', PortState.EXPIRED,
                               PortState.EXPIRED.label)
        return format_html('<span class="access-state access-{}">{}</span>', record.state, value)
