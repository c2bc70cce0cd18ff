"""CSV export: streamed row by row (flat memory at any size), UTF-8 with a byte-order mark, ISO 8601 UTC,
formula-safe cells."""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime

from django.db.models import QuerySet

from jitportal.lib.arm import resource_name
from jitportal.lib.times import utc_iso

from .callers import caller_label, portal_identities
from .redaction import AuditScope, resource_shown

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Where a spreadsheet may start a cell inside one of ours: at its locale's list separator (";" in much of Europe), at a
# tab (read as tab-separated) or at a line break (quotes not honoured). A formula character there (spaces between)
# is neutralized as at a cell's start; commas are not, since the writer quotes a cell holding one.
FORMULA_AFTER_SEPARATOR = re.compile(r"([;\t\r\n])(?=\s*[=+\-@])")
CHUNK_SIZE = 2000
# Excel reads a CSV file without a byte-order mark in the system's legacy code page, so "Zoë" would show as
# "ZoÃ«"; with it, Excel (and Python's ``utf-8-sig``) reads UTF-8.
BOM = "\ufeff"


def vm_names(vm_ids: str) -> str:
    """The names of the VMs ``vm_ids`` lists (space-separated ARM ids), as the search names them."""
    return " ".join(resource_name(vm) for vm in vm_ids.split())


# (header, field[, how the shown value derives from it]) — the columns the search shows, the VMs an event concerns
# (a JIT call's resource is its policy, the page names the VMs), then correlation and event ids (``export_columns``
# adds the subscription's name after its id, and the caller's after the caller).
ACTIVITY_COLUMNS: tuple[tuple, ...] = (
    ("Time (UTC)", "occurred_at"),
    ("Subscription", "subscription_id"),
    ("Resource group", "resource_group"),
    ("Resource name", "resource_id", resource_name),
    ("Resource id", "resource_id"),
    ("VMs", "vm_ids", vm_names),
    ("VM ids", "vm_ids", lambda vm_ids: " ".join(vm_ids.split())),  # stored with a space at both ends
    ("Operation", "operation_name"),
    ("Status", "status"),
    ("Caller", "caller"),
    ("Correlation id", "correlation_id"),
    ("Event id", "event_data_id"),
)
TRAIL_COLUMNS: tuple[tuple, ...] = (
    ("Time (UTC)", "occurred_at"),
    ("User", "actor_label"),
    ("Action", "action"),
    ("Target", "target_label"),
    ("Target id", "target_id"),
    ("Subscription", "subscription_id"),
    ("Client IP", "client_ip"),
    ("Correlation id", "correlation_id"),
    ("Event id", "id"),
)


def export_columns(source: str, subscription_names: Mapping[str, str]) -> tuple[tuple, ...]:
    """The columns of an export of ``source`` (``"portal"``: the trail, else the Activity Log): the subscription's id
    as before, then its display name from ``subscription_names`` (lower-case id → name; "" when unknown), as the
    search shows it; in the Activity Log's, the caller as logged, then as the search shows it (the portal's own
    identity by name, ``audit.callers``)."""
    def name(subscription_id: str) -> str:
        return subscription_names.get(subscription_id.lower(), "") if subscription_id else ""

    columns = TRAIL_COLUMNS if source == "portal" else ACTIVITY_COLUMNS
    at = next(n for n, column in enumerate(columns) if column[1] == "subscription_id") + 1
    columns = (*columns[:at], ("Subscription name", "subscription_id", name), *columns[at:])
    if source == "portal":
        return columns
    identities = portal_identities()
    at = next(n for n, column in enumerate(columns) if column[1] == "caller") + 1
    return (*columns[:at], ("Caller name", "caller", lambda caller: caller_label(caller, identities)), *columns[at:])


def neutralize(value: object) -> str:
    """A cell's text; one a spreadsheet would read as a formula gets a leading apostrophe, as does a formula
    character after a separator within it (``FORMULA_AFTER_SEPARATOR``)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return utc_iso(value)  # one shape for every time: the column sorts as text
    text = FORMULA_AFTER_SEPARATOR.sub(r"\1'", str(value))
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file-like object whose write returns the line, for csv.writer inside a generator."""

    def write(self, value: str) -> str:
        return value


def csv_lines(queryset: QuerySet, columns: Sequence[tuple], *, scope: AuditScope | None = None) -> Iterator[str]:
    """The header and one line per row, fetched in chunks as plain tuples (no model instances). With the viewer's
    ``scope``, an Activity Log row's resource id names no VM outside it (``redaction.resource_shown``), and its VMs
    are those inside it."""
    writer = csv.writer(_Echo())
    yield writer.writerow([column[0] for column in columns])
    fields = list(dict.fromkeys(column[1] for column in columns))
    redacted = scope is not None and "resource_id" in fields and "vm_ids" in _field_names(queryset)
    if redacted:
        fields.append("vm_ids")
    plan = [(fields.index(column[1]), column[2] if len(column) > 2 else None) for column in columns]
    rows: Iterable[tuple] = queryset.order_by("-occurred_at", "-id").values_list(*fields).iterator(
        chunk_size=CHUNK_SIZE
    )
    at = fields.index("resource_id") if redacted else -1
    vms_at = fields.index("vm_ids") if redacted and "vm_ids" in fields[:-1] else -1
    for row in rows:
        if redacted:
            row = (*row[:at], resource_shown(row[at], row[-1], scope), *row[at + 1:])
            if vms_at >= 0:
                row = (*row[:vms_at], " ".join(scope.split(row[vms_at].split())[0]), *row[vms_at + 1:])
        yield writer.writerow([neutralize(derive(row[i]) if derive else row[i]) for i, derive in plan])


def _field_names(queryset: QuerySet) -> set[str]:
    return {field.name for field in queryset.model._meta.get_fields()}


def encoded(lines: Iterable[str]) -> Iterator[bytes]:
    """UTF-8 bytes starting with a byte-order mark (so spreadsheets read non-ASCII names right), a few hundred
    lines per chunk (fewer, larger writes to the socket)."""
    buffer: list[str] = [BOM]
    for line in lines:
        buffer.append(line)
        if len(buffer) >= 500:
            yield "".join(buffer).encode("utf-8")
            buffer.clear()
    if buffer:
        yield "".join(buffer).encode("utf-8")
