"""``{% error_summary %}``: the one error summary every form of the portal shows above its fields.

The summary (``generic/_error_summary.html``) is a ``role="alert"`` box with ``tabindex="-1"`` and
``data-error-summary``, which ``jitportal/error_summary.js`` focuses when the page loads (or when an htmx swap brings
in a new one), so keyboard and screen-reader users land on what went wrong rather than at the top of the page.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template

register = template.Library()


@register.inclusion_tag("generic/_error_summary.html")
def error_summary(form: Any = None, *, errors: Iterable[Any] = (), summary_id: str = "form-errors", intro: str = "",
                  fields: bool = False, filter_note: bool = False) -> dict[str, Any]:
    """The summary of ``form``'s errors (a form or formset), if there are any.

    Lists the form's non-field errors, then ``errors`` (plain messages), then each field's errors as "Label: error",
    a link to the field (in a formset "Row 2, Label: error"; an error the form also gave as a whole is listed once,
    at its field). ``fields`` is for a form whose fields the page writes by hand (no link: its ids are the page's),
    and ``filter_note`` marks a list's filter form (each item gets the field's ``…_error`` id and says the filter was
    left out). ``intro`` is a sentence above the list (shown whenever the summary is).

    Each item is ``(item id, text, href)``; ``href`` is "" for an item that is not a link.
    """
    items: list[tuple[str, str, str]] = []
    linked: list[tuple[str, str, str]] = []
    if form is not None and not (fields or filter_note):
        linked = _field_links(form)
    at_fields = _field_messages(form) if linked else set()
    if form is not None:
        general = form.non_form_errors() if hasattr(form, "non_form_errors") else form.non_field_errors()
        items += [("", str(e), "") for e in general if str(e) not in at_fields]
    items += [("", str(e), "") for e in errors]
    if form is not None and (fields or filter_note) and not hasattr(form, "non_form_errors"):
        for field in form:
            if field.errors:
                text = f"{field.label}: {' '.join(field.errors)}"
                if filter_note:
                    items.append((f"{field.auto_id}_error", f"{text} The filter was left out.", ""))
                else:
                    items += [("", f"{field.label}: {e}", "") for e in field.errors]
    items += linked
    has_errors = bool(items) or bool(form is not None and form_has_errors(form))
    return {"show": has_errors, "items": items, "summary_id": summary_id, "intro": intro}


def _rows(form: Any) -> list[tuple[str, Any]]:
    """``(prefix, form)`` of a form, or of each row of a formset not marked for removal ("Row 2, ")."""
    if not hasattr(form, "forms"):
        return [("", form)]
    return [(f"Row {index}, ", row) for index, row in enumerate(form.forms, start=1)
            if not (form.can_delete and getattr(row, "cleaned_data", {}).get("DELETE"))]


def _field_links(form: Any) -> list[tuple[str, str, str]]:
    """Each visible field's errors as links to the field: its input, or a group's first option."""
    links = []
    for prefix, row in _rows(form):
        for field in row:
            if not field.errors or field.is_hidden or not field.auto_id:
                continue
            target = field.id_for_label or f"{field.auto_id}_0"
            links += [("", f"{prefix}{field.label}: {error}", f"#{target}") for error in field.errors]
    return links


def _field_messages(form: Any) -> set[str]:
    """The field errors' messages alone (to list a message the form also gave as a whole only at its field)."""
    return {str(error) for _, row in _rows(form) for field in row if not field.is_hidden for error in field.errors}


def form_has_errors(form: Any) -> bool:
    """Whether a form or formset holds any error (a bound form that was validated)."""
    if hasattr(form, "total_error_count"):
        return form.is_bound and form.total_error_count() > 0
    return bool(form.errors)
