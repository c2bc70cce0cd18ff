"""Shared django-tables2 column settings, the base of the sortable lists, and the paging of every list page."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db.models import OrderBy, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import strip_tags
from django.utils.safestring import SafeString
from django_tables2 import Column, RequestConfig, Table
from django_tables2.columns import BoundColumn
from django_tables2.data import TableQuerysetData

from jitportal.lib.keyset import SeekPage, seek_page
from jitportal.lib.times import zoned_time

# Cells that must not wrap (dates break at their hyphens otherwise): the admin's own ``nowrap`` class.
NOWRAP = {"td": {"class": "nowrap"}}

# The most rows a ``?per_page=`` may ask for: one page stays cheap to fetch and render at any table size.
MAX_PER_PAGE = 100
# What a list paged by cursor says over its first page when a page link was not one it gave.
CURSOR_REFUSED = ("That page link is not one this list gave (it was cut short or edited, or given for another sort): "
                  "here is the first page.")
# The longest text a list's search takes: longer than any name, address or id it finds, and far from what a database
# takes as a LIKE pattern (SQLite refuses one over 50,000 bytes as "too complex", a 500 where it was not refused first).
SEARCH_MAX_LENGTH = 200
# The highest page number handed to a paginator: its offset stays within the databases' 64-bit integers (a larger
# one failed the query), and is still past the end of any table, which then shows its last page.
MAX_PAGE = 10**15


class TimeColumn(Column):
    """A time as every page shows one (``jitportal.lib.times.zoned_time``: its zone named, in a ``<time>``), in the
    portal's time zone or in ``utc``, to the minute or to the ``seconds``."""

    def __init__(self, *args, utc: bool = False, seconds: bool = False, **kwargs) -> None:
        kwargs.setdefault("attrs", NOWRAP)
        super().__init__(*args, **kwargs)
        self.utc, self.seconds = utc, seconds

    def render(self, value: datetime | None) -> SafeString:
        return zoned_time(value, utc=self.utc, seconds=self.seconds)


def column_label(bound: BoundColumn) -> str:
    """A column's header as plain text: its words without their markup (the inventory's "Actions", shown only to
    screen readers, by that word; a header that is only a box, ``""``)."""
    return strip_tags(str(bound.header)).strip()


def column_labels(table: Table) -> dict[str, str]:
    """The columns ``table`` shows, in order, each to its ``column_label`` (for rows rendered in Python)."""
    return {bound.name: column_label(bound) for bound in table.columns}


class StackedRows:
    """A django-tables2 table (mixed in before ``Table``) whose rows portal.css stacks as cards on a phone
    (``<table class="stacked">``): each data cell carries its column's name in ``data-label``, which the card shows
    before the cell's value. Written into each column's own ``td`` attributes (copied for each table) once, not
    worked out again for every cell."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for bound in self.columns:
            attrs = bound.column.attrs
            td = {"class": None, **attrs.get("td", attrs.get("cell", {})), "data-label": column_label(bound)}
            bound.column.attrs = {**attrs, "td": td}


# A pk no row has, reversed in its place and replaced by each row's (``object_url``).
_PK_MARK = 999999999


def object_url(viewname: str) -> Callable[[int | str], str]:
    """The URL of ``viewname`` for an object's pk, reversed once: rows rendered in Python link each of 50 rows
    without 50 ``reverse`` calls."""
    pattern = reverse(viewname, kwargs={"pk": _PK_MARK})
    return lambda pk: pattern.replace(str(_PK_MARK), str(pk))


class SortableTable(Table):
    """The base of every sortable list: each header cell (``column.attrs.th``, which django-tables2's template and
    the inventory's render) says how the rows are sorted, for screen readers (``aria-sort``), and its sort links
    start again at page 1. Rows that tie on the sort keys are ordered by their id (``_break_ties``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("template_name", "jitportal/sortable_table.html")
        super().__init__(*args, **kwargs)

    def _sort(self, value) -> None:
        Table.order_by.fset(self, value)
        self._break_ties()
        self._announce_sort()

    def _break_ties(self) -> None:
        """Order rows equal on every sort key by id, in the first key's direction: without it the database may
        return ties in another order for each page's query, so pages would repeat some rows and skip others
        (sorted by state, most rows tie). The lists' indexes end with the id for the same reason."""
        if not isinstance(self.data, TableQuerysetData):
            return
        queryset = self.data.data
        keys = list(queryset.query.order_by) or list(queryset.model._meta.ordering)
        if not keys or _key_name(keys[-1]) in {"pk", "id", queryset.model._meta.pk.attname}:
            return
        first = keys[0]
        descending = first.descending if isinstance(first, OrderBy) else str(first).startswith("-")
        self.data.data = queryset.order_by(*keys, "-pk" if descending else "pk")

    order_by = property(Table.order_by.fget, _sort)

    def _announce_sort(self) -> None:
        """``aria-sort`` (``ascending`` or ``descending``) on the header of the column the rows are sorted by (the
        first sort key; the ties it leaves are not announced), none on the others. Written into the columns' own
        attributes (copied for each table) once per sort: django-tables2 works a column's attributes out again for
        every cell, so a callable here would run once per cell."""
        first = self.order_by[0] if self.order_by else None
        for bound in self.columns:
            th = {name: value for name, value in bound.column.attrs.get("th", {}).items() if name != "aria-sort"}
            if first is not None and first.bare == bound.name and bound.orderable:
                th["aria-sort"] = "descending" if first.is_descending else "ascending"
            bound.column.attrs = {**bound.column.attrs, "th": th}


def _key_name(key) -> str:
    """The field an ``order_by`` key names, without its direction (``""`` for an expression)."""
    return key.lstrip("-") if isinstance(key, str) else ""


def positive_int(value: str | None, default: int) -> int:
    """A query parameter as a positive whole number; ``default`` when missing or anything else."""
    try:
        number = int(value or "")
    except ValueError:
        return default
    return number if number > 0 else default


def rows_per_page(value: str | None, default: int) -> int:
    """``?per_page=`` cut to ``MAX_PER_PAGE`` (or to ``default`` when a setting makes it larger); ``default`` when
    missing or not a positive whole number."""
    return min(positive_int(value, default), max(MAX_PER_PAGE, default))


# What a list's "Rows per page" offers (``page_size_choice``), each one ``rows_per_page`` accepts.
PAGE_SIZES = (25, 50, 100)


def page_size_choice(request: HttpRequest, table: Table, rows: int) -> dict | None:
    """The paging bar's "Rows per page" (``generic/_page_size.html``) of a list paged by number: ``PAGE_SIZES`` and
    the size shown if it is another (``?per_page=10``), the size shown selected, and the request's other parameters,
    which it sends again (filters, search, tab, sort) but for the page number (page 1 of the new size). ``None`` when
    the list's ``rows`` fit the smallest size and it shows them all."""
    size = table.paginator.per_page
    if rows <= min(PAGE_SIZES) and rows <= size:
        return None
    return _page_size_form(request, size, table.prefixed_per_page_field, restart=(table.prefixed_page_field,))


def seek_page_size_choice(request: HttpRequest, page, *, default: int) -> dict | None:
    """The "Rows per page" of a list paged by cursor (``seek_list_page``, the audit search's ``keyset_page``), as
    ``page_size_choice``: the new size starts again at the first page, so it sends neither cursor (nor a page
    number). ``None`` when ``page`` is the whole list and the smallest size shows it."""
    if not page.has_other_pages and len(page.rows) <= min(PAGE_SIZES):
        return None
    size = rows_per_page(request.GET.get("per_page"), default)
    return _page_size_form(request, size, "per_page", restart=("after", "before", "page"))


def _page_size_form(request: HttpRequest, size: int, field: str, *, restart: tuple[str, ...]) -> dict:
    keep = [(name, value) for name, values in request.GET.lists() if name != field and name not in restart
            for value in values]
    return {"field": field, "keep": keep, "choices": [(n, n == size) for n in sorted({*PAGE_SIZES, size})]}


def _within(page: str, last: int | None) -> str:
    """``page``, or ``last`` (else ``MAX_PAGE``) when it is a number past it (other values are the paginator's to
    refuse)."""
    try:
        number = int(page)
    except ValueError:
        return page
    highest = MAX_PAGE if last is None else min(last, MAX_PAGE)
    return str(highest) if number > highest else page


def paginate(request: HttpRequest, table: Table, *, per_page: int,
             paginator_class: type[Paginator] = Paginator, count: int | None = None) -> Table:
    """Sort and page ``table`` from the request, as django-tables2's ``RequestConfig`` does (a page that is not a
    number is the first, one past the end the last the paginator knows), with at most ``MAX_PER_PAGE`` rows.
    ``count``, the rows when the caller already has it, brings a page past the end to the last one without counting
    again; a ``LazyPaginator`` (which knows no last page) counts them only when asked for a page past the end."""
    RequestConfig(request, paginate=False).configure(table)  # the sort
    size = rows_per_page(request.GET.get(table.prefixed_per_page_field), per_page)
    last = _last_page(count, size) if count is not None else None
    try:
        table.paginate(paginator_class=paginator_class, per_page=size,
                       page=_within(request.GET.get(table.prefixed_page_field) or "1", last))
    except PageNotAnInteger:
        table.page = table.paginator.page(1)
    except EmptyPage:
        if table.paginator.num_pages is None:  # a LazyPaginator past the end: one COUNT places the last page
            table.paginate(paginator_class=paginator_class, per_page=size, page=_last_page(len(table.data), size))
        else:
            table.page = table.paginator.page(table.paginator.num_pages)
    return table


def seek_list_page(request: HttpRequest, queryset: QuerySet, *, key: str, descending: bool,
                   per_page: int) -> tuple[SeekPage, str, str]:
    """The page of ``queryset`` sorted by ``key`` then id (``jitportal.lib.keyset``) that ``?after=`` or
    ``?before=`` names, ``?per_page=`` rows (``rows_per_page``): nothing counts the rows and a deep page costs what
    the first does. A cursor the list did not give shows the first page, saying so. Returns the page, that note
    (``""`` when none) and the query the page links add their cursor to: the request's without its cursors or a
    page number (a link kept from numbered pages)."""
    size, note = rows_per_page(request.GET.get("per_page"), per_page), ""
    try:
        page = seek_page(queryset, key=key, descending=descending, after=request.GET.get("after"),
                         before=request.GET.get("before"), size=size)
    except ValidationError:  # a page link edited or cut short: the first page, saying why
        note = CURSOR_REFUSED
        page = seek_page(queryset, key=key, descending=descending, size=size)
    query = request.GET.copy()
    for name in ("after", "before", "page"):
        query.pop(name, None)
    return page, note, query.urlencode()


def _last_page(count: int, size: int) -> int:
    return max(1, -(-count // size))
