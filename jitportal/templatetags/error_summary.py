"""``{% error_summary %}``: the one error summary every form of the portal shows above its fields.

The summary (``generic/_error_summary.html``) is a ``role="alert"`` box with ``tabindex="-1"`` and
``data-error-summary``, which ``jitportal/error_summary.js`` focuses when the page loads (or when an htmx swap brings
in a new one), so keyboard and screen-reader users land on what went wrong rather than at the top of the page. Its
heading says that something went wrong and how much ("There is a problem with this form", "There are 2 problems
with the filters"); each problem of a field on the page links to the field (following the link puts the focus in
it), and one of a field the page does not show says so and where it can be changed.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django import template
from django.template.defaultfilters import pluralize

register = template.Library()


@dataclass(frozen=True)
class Problem:
    """One line of the summary: ``text``, a link to its field when ``href``; ``note`` after it (not part of the
    link), and ``fix``, a link to ``fix_href`` where a field not on this page can be changed (with ``fix_form``, a
    button sending that form there instead, with ``then=edit``)."""

    text: str
    href: str = ""
    item_id: str = ""
    note: str = ""
    fix: str = ""
    fix_href: str = ""
    fix_form: str = ""


def heading(count: int, about: str) -> str:
    """What the summary says first: that something went wrong with ``about`` (``this form``), and how much."""
    if count <= 1:
        return f"There is a problem with {about}"
    return f"There are {count} problem{pluralize(count)} with {about}"


@register.inclusion_tag("generic/_error_summary.html")
def error_summary(form: Any = None, *, errors: Iterable[Any] = (), summary_id: str = "form-errors",
                  fields: Mapping[str, str] | None = None, elsewhere: str = "", elsewhere_text: str = "",
                  elsewhere_form: str = "", filter_note: bool = False, about: str = "", then: str = ""
                  ) -> dict[str, Any]:
    """The summary of ``form``'s errors (a form or formset), if there are any.

    Lists the form's non-field errors, then ``errors`` (plain messages, or ``(message, href)`` pairs linking to what
    fixes them on the page), then each field's errors as "Label: error", a link to the field (in a formset "Row 2,
    Label: error"; an error the form also gave as a whole is listed once, at its field).

    ``fields`` is for a form whose fields the page writes by hand: the names of those it shows, each to its
    element's id. A field's error outside it says the field is not on this page and, with ``elsewhere`` (a URL,
    its link reading ``elsewhere_text``), where to change it; with ``elsewhere_form`` (the id of the page's form) it is
    a button sending that form to ``elsewhere`` with ``then=edit``, so what was typed goes along (in the body, never
    in the URL) to be shown there, not saved. ``filter_note`` marks a list's filter form: each item
    gets the field's ``…_error`` id (its control's ``aria-describedby``) and says the filter was left out.
    ``about`` names what the heading speaks of: "this form", or "the filters" for a filter form. ``then`` is what
    to do once the problems are read (said after them, not counted as one).

    Each item is a ``Problem``.
    """
    items: list[Problem] = []
    linked = _field_problems(form, fields, elsewhere, elsewhere_text, elsewhere_form, filter_note
                             ) if form is not None else []
    at_fields = _field_messages(form) if linked and not filter_note else set()
    if form is not None:
        general = form.non_form_errors() if hasattr(form, "non_form_errors") else form.non_field_errors()
        items += [Problem(str(e)) for e in general if str(e) not in at_fields]
    for error in errors:
        text, href = error if isinstance(error, (tuple, list)) else (error, "")
        items.append(Problem(str(text), href=href))
    items += linked
    has_errors = bool(items) or bool(form is not None and form_has_errors(form))
    about = about or ("the filters" if filter_note else "this form")
    return {"show": has_errors, "items": items, "summary_id": summary_id, "heading": heading(len(items), about),
            "then": then}


def _rows(form: Any) -> list[tuple[str, Any]]:
    """``(prefix, form)`` of a form, or of each row of a formset not marked for removal ("Row 2, ")."""
    if not hasattr(form, "forms"):
        return [("", form)]
    return [(f"Row {index}, ", row) for index, row in enumerate(form.forms, start=1)
            if not (form.can_delete and getattr(row, "cleaned_data", {}).get("DELETE"))]


def _target(field: Any) -> str:
    """The id following a link to ``field`` focuses: its input, or a group's first option."""
    return field.id_for_label or f"{field.auto_id}_0"


def _field_problems(form: Any, shown: Mapping[str, str] | None, elsewhere: str, elsewhere_text: str,
                    elsewhere_form: str, filter_note: bool) -> list[Problem]:
    """Each visible field's errors, linked to the field where the page shows it."""
    problems = []
    for prefix, row in _rows(form):
        for field in row:
            if not field.errors or field.is_hidden or not field.auto_id:
                continue
            if filter_note:  # one item per filter, which its control's aria-describedby names
                problems.append(Problem(f"{field.label}: {' '.join(field.errors)}", href=f"#{_target(field)}",
                                        item_id=f"{field.auto_id}_error", note="The filter was left out."))
            elif shown is None or field.name in shown:
                target = shown[field.name] if shown is not None else _target(field)
                problems += [Problem(f"{prefix}{field.label}: {error}", href=f"#{target}") for error in field.errors]
            else:  # the page does not show it: say so, and where it can be changed
                missing = f"“{field.label}” is not on this page"
                fix = {"note": f"{missing}:", "fix": elsewhere_text or "change it in the full form",
                       "fix_href": elsewhere, "fix_form": elsewhere_form} if elsewhere else {"note": f"{missing}."}
                problems += [Problem(f"{prefix}{field.label}: {error}", **fix) for error in field.errors]
    return problems


def _field_messages(form: Any) -> set[str]:
    """The field errors' messages alone (to list a message the form also gave as a whole only at its field)."""
    return {str(error) for _, row in _rows(form) for field in row if not field.is_hidden for error in field.errors}


def form_has_errors(form: Any) -> bool:
    """Whether a form or formset holds any error (a bound form that was validated)."""
    if hasattr(form, "total_error_count"):
        return form.is_bound and form.total_error_count() > 0
    return bool(form.errors)
