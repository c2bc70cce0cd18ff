"""The Requests list as a django-tables2 table: it declares the columns, sorts and pages; ``AccessRequestTable.body``
renders the rows."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import django_tables2 as tables
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from jitportal.lib.keyset import SeekPage
from jitportal.lib.tables import NOWRAP, SortableTable, column_labels, object_url
from jitportal.lib.times import zoned_time

from .approvals import overdue
from .ends import request_end, unknown_end_text
from .models import FINAL, AccessRequest, ApprovalState, PortState

EMPTY = "—"  # a cell with no value, as django-tables2 shows one
# The sortable columns, each a field with a (field, id) index that keyset pages walk: the column's own field, or the
# one SEEK_KEYS names (Source sorts by its addresses' numbers, ``source_order.py``).
SEEK_FIELDS = ("id", "created_at", "requester_name", "source_prefix", "end_at", "state", "kind")
SEEK_KEYS = {"source_prefix": "source_sort"}
# The columns whose cells do not wrap (times): the admin's ``nowrap``, as ``NOWRAP`` sets on a django-tables2 column.
NOWRAP_COLUMNS = frozenset({"created_at", "end_at"})


class AccessRequestTable(SortableTable):
    id = tables.Column(verbose_name="#")
    # The id breaks ties, so pages neither repeat nor skip requests stored in the same instant.
    created_at = tables.Column(attrs=NOWRAP, verbose_name="Requested", order_by=("created_at", "id"))
    requester_name = tables.Column(verbose_name="Requester")
    vms = tables.Column(empty_values=(), orderable=False, verbose_name="VMs")
    source_prefix = tables.Column(verbose_name="Source", order_by=("source_sort",))
    end_at = tables.Column(attrs=NOWRAP, verbose_name="Ends")
    state = tables.Column(verbose_name="State")
    kind = tables.Column(verbose_name="Kind")

    class Meta:
        model = AccessRequest
        fields = ("id", "created_at", "requester_name", "vms", "source_prefix", "end_at", "state", "kind")
        order_by = ("-created_at",)
        attrs = {"id": "request-table", "class": "requests stacked sortable"}  # cards on a phone (portal.css)
        empty_text = "No requests match."

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("template_name", "policies/access/_request_table.html")
        super().__init__(*args, **kwargs)

    seek: SeekPage | None = None  # the page shown (``jitportal.lib.keyset``), set by the view

    def seek_key(self) -> tuple[str, bool]:
        """The field the rows are sorted by (each has a (field, id) index) and whether descending: the first sort
        key, or the default, newest first."""
        first = self.order_by[0] if self.order_by else None
        if first is None or first.bare not in SEEK_FIELDS:
            return "created_at", True
        return SEEK_KEYS.get(first.bare, first.bare), first.is_descending

    def body(self) -> SafeString:
        """The ``<tr>`` of each request on the page, or the empty text (rendered in Python: django-tables2 works out
        each cell's attributes and renderer again for every cell, ~60 ms a page of 50 rows)."""
        records = self.seek.rows if self.seek is not None else [row.record for row in self.paginated_rows]
        shown = column_labels(self)
        if not records:
            return mark_safe(f'<tr><td colspan="{len(shown)}">{escape(self.empty_text)}</td></tr>'  # noqa: S308
                             if self.empty_text else "")
        return render_rows(records, shown, user=self.request.user, now=timezone.now())


def render_rows(records: list[AccessRequest], shown: Mapping[str, str], *, user, now: datetime) -> SafeString:
    """The ``<tr>`` of each request for the columns ``shown``, each to its header as plain text
    (``jitportal.lib.tables.column_labels``), which every cell carries in ``data-label`` for the cards a phone shows
    (``table.stacked`` in portal.css): the VMs ``user`` may see of each
    (``selectors.vm_rows_shown``), and each request's state and end as of ``now`` (one whose access ended as the
    reconcile will mark it: ``selectors.show_list_as_reconciled``). Every value is escaped."""
    from .selectors import show_list_as_reconciled, vm_rows_shown

    link = object_url("policies:request_detail")
    nowrap = ' class="nowrap"'
    td = {name: f'<td data-label="{escape(label)}"{nowrap if name in NOWRAP_COLUMNS else ""}>'
          for name, label in shown.items()}  # each cell's opening
    out = []
    for index, record in enumerate(show_list_as_reconciled(records, now)):
        pk = str(record.pk)
        cells = {
            "id": f'<a href="{link(pk)}">{pk}</a>',
            "created_at": zoned_time(record.created_at),
            "requester_name": escape(record.requester_name or EMPTY),
            "vms": escape(_vm_names(*vm_rows_shown(record, user))),
            "source_prefix": escape(record.source_prefix or EMPTY),
            "end_at": ends(record, now),
            "state": state_label(record, now),
            "kind": escape(record.get_kind_display() or EMPTY),
        }
        row = "".join(f"{td[name]}{cells[name]}</td>" for name in shown)
        out.append(f'<tr data-request="{pk}" class="{"odd" if index % 2 else "even"}">{row}</tr>')
    return mark_safe("".join(out))  # noqa: S308 - every value above is escaped


def _vm_names(shown: list, hidden: int) -> str:
    """The names of the VMs shown, and how many others the request has."""
    names = ", ".join(sorted({row.vm_name for row in shown}))
    return f"{names} (+{hidden} outside your scope)" if hidden else names


def ends(record: AccessRequest, now: datetime) -> SafeString:
    """The Ends cell (HTML): the end once it is known (``ends.request_end``: Azure's once a port opened, the planned
    end of a scheduled window or of a request opening without approval); before that the window's length: "2 hours
    after the last approval" while it waits for its approvals (its window starts when the last one lands), "2 hours
    after it opens" once approved (the stored planned end, the request time plus the window, is not when it ends);
    once it is over, when its access ended (``ended``); denied, failed or not approved in time (or past its approval
    deadline), nothing opened, so nothing ends."""
    if overdue(record, now):
        return mark_safe("Did not open")
    if record.state in (PortState.DENIED, PortState.FAILED) or record.approval_state == ApprovalState.EXPIRED:
        return mark_safe("Did not open")
    if record.state in FINAL:
        return ended(record)
    if request_end(record, record.ports.all()) is None:
        return escape(unknown_end_text(record.state, record.window))
    if record.state == PortState.OPEN and record.closed_at is not None:
        return mark_safe(f"Closing<br><small>(was to end {zoned_time(record.end_at)})</small>")  # noqa: S308
    return zoned_time(record.end_at)


def ended(record: AccessRequest) -> SafeString:
    """When a finished request's access ended, from its ports (prefetched by the list): the latest end of those that
    opened, each port's own planned end unless it was closed before it ("Closed …", with the planned end), else
    "Expired …"; "Did not open" when none opened (cancelled, failed or not approved)."""
    opened = [port for port in record.ports.all() if port.opened_at is not None]
    if not opened:
        cancelled = record.closed_at is not None and record.state == PortState.CLOSED
        return mark_safe("Did not open" + (f"<br><small>(cancelled {zoned_time(record.closed_at)})</small>"  # noqa: S308
                                           if cancelled else ""))
    last, early = max((port.finished_at, True) if port.closed_early else (port.end_at, False) for port in opened)
    planned = f"<br><small>(was to end {zoned_time(record.end_at)})</small>" if last < record.end_at else ""
    return mark_safe(f"{'Closed' if early else 'Expired'} {zoned_time(last)}{planned}")  # noqa: S308 - times only



def state_label(record: AccessRequest, now: datetime) -> str:
    """The state as a labelled ``<span>``; one past its approval deadline as the reconcile will mark it
    (``selectors.in_shown_state``)."""
    if overdue(record, now):
        state, label = PortState.EXPIRED, PortState.EXPIRED.label
    else:
        state, label = record.state, record.get_state_display()
    return f'<span class="access-state access-{escape(state)}">{escape(label)}</span>'
