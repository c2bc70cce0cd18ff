"""The rows of the approvers' queue, read in three queries for a page and rendered in Python (as the Requests
list's, ``tables.render_rows``): a template that reached each row's VMs, ports and decisions through related
managers, and formatted each value through template lookups, took about half a millisecond a row."""
from __future__ import annotations

from datetime import datetime, timedelta
from html import escape  # Django's, lazy-aware, costs a wrapper call per value: these are all plain strings

from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timeuntil

from jitportal.lib.tables import object_url
from jitportal.lib.times import zoned_time

from .approvals import progress
from .models import AccessRequest, AccessRequestVm, Approval
from .selectors import requester_history
from .validation import window_label

# The queue's columns: each the header of its column, which every cell names in ``data-label`` for the cards a
# phone shows (``table.stacked`` in portal.css).
COLUMNS = ("#", "Requester", "VMs and ports", "Source", "Window", "Justification", "History (30 days)", "Approvals",
           "Expires")
# The request fields a row shows (the page reads these alone).
FIELDS = ("id", "requester_id", "requester_name", "source_prefix", "scheduled_start", "justification",
          "approval_expires_at", "approvals_required", "second_level_approvals")


def _vms_and_windows(ids: list[int]) -> tuple[dict[int, list[tuple[str, list[int]]]], dict[int, int]]:
    """Per request: its VMs (by name) with their port numbers, and its longest port window in seconds."""
    vms: dict[int, dict[int, tuple[str, list[int]]]] = {pk: {} for pk in ids}
    longest = dict.fromkeys(ids, 0)
    rows = (AccessRequestVm.objects.filter(request_id__in=ids).order_by("vm_name", "id", "ports__number")
            .values_list("request_id", "id", "vm_name", "ports__number", "ports__duration_seconds"))
    for request_id, row_id, name, number, seconds in rows:
        numbers = vms[request_id].setdefault(row_id, (name, []))[1]
        if number is not None:
            numbers.append(number)
            longest[request_id] = max(longest[request_id], seconds)
    return {pk: list(by_row.values()) for pk, by_row in vms.items()}, longest


def _decisions(ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    found: dict[int, list[tuple[int, str]]] = {pk: [] for pk in ids}
    for request_id, level, decision in Approval.objects.filter(request_id__in=ids).order_by().values_list(
            "request_id", "level", "decision"):
        found[request_id].append((level, decision))
    return found


def _plural(n: int) -> str:
    return "" if n == 1 else "s"


def queue_rows(requests: list[AccessRequest], *, now: datetime) -> SafeString:
    """The ``<tr>`` of each request of a page of the queue: who, which VMs and ports, source, window (and its
    scheduled start), justification, the requester's last 30 days, approvals given per level and when it expires
    (time left as of ``now``). Every value is escaped."""
    if not requests:
        return mark_safe("")
    ids = [r.pk for r in requests]
    vms, longest = _vms_and_windows(ids)
    decisions = _decisions(ids)
    history = requester_history(sorted({r.requester_id for r in requests}))
    link = object_url("policies:request_review")
    td = [f'<td data-label="{escape(label)}">' for label in COLUMNS]
    out = []
    for r in requests:
        pk = str(r.pk)
        ports = "".join(f"<div>{escape(name)}: {', '.join(map(str, numbers))}</div>" for name, numbers in vms[r.pk])
        start = f" from {zoned_time(r.scheduled_start)}" if r.scheduled_start else ""
        seen = history.get(r.requester_id, {})
        total, opened, denied = seen.get("total", 0), seen.get("opened", 0), seen.get("denied", 0)
        given = progress(r, decisions[r.pk])
        level_2 = f" · level 2 {given['second']}/{given['second_needed']}" if given["second_needed"] else ""
        expires = (f"{zoned_time(r.approval_expires_at)} ({escape(timeuntil(r.approval_expires_at, now))})"
                   if r.approval_expires_at else "")
        cells = (f'<a href="{link(pk)}">#{pk}</a>', escape(r.requester_name), ports,
                 f"<code>{escape(r.source_prefix)}</code>",
                 f"{window_label(timedelta(seconds=longest[r.pk]))}{start}", f"<q>{escape(r.justification)}</q>",
                 f"{total} request{_plural(total)}, {opened} opened, {denied} denied",
                 f"{given['first']}/{given['first_needed']}{level_2}", expires)
        row = "".join(f"{opening}{cell}</td>" for opening, cell in zip(td, cells, strict=True))
        out.append(f'<tr data-request="{pk}">{row}</tr>')
    return mark_safe("".join(out))  # noqa: S308 - every value above is escaped
