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

    Lists the form's non-field errors, then ``errors`` (plain messages); ``fields`` lists each field's
    errors too, as "Label: error" (for forms whose fields show no error of their own), and ``filter_note`` marks a
    list's filter form (each item gets the field's ``…_error`` id and says the filter was left out). ``intro`` is a
    sentence above the list (shown whenever the summary is).
    """
    items: list[tuple[str, str]] = []
    if form is not None:
        general = form.non_form_errors() if hasattr(form, "non_form_errors") else form.non_field_errors()
        items += [("", str(e)) for e in general]
    items += [("", str(e)) for e in errors]
    if form is not None and (fields or filter_note) and not hasattr(form, "non_form_errors"):
        for field in form:
            if field.errors:
                text = f"{field.label}: {' '.join(field.errors)}"
                if filter_note:
                    items.append((f"{field.auto_id}_error", f"{text} The filter was left out."))
                else:
                    items += [("", f"{field.label}: {e}") for e in field.errors]
    has_errors = bool(items) or bool(form is not None and form_has_errors(form))
    return {"show": has_errors, "items": items, "summary_id": summary_id, "intro": intro}


def form_has_errors(form: Any) -> bool:
    """Whether a form or formset holds any error (a bound form that was validated)."""
    if hasattr(form, "total_error_count"):
        return form.is_bound and form.total_error_count() > 0
    return bool(form.errors)
