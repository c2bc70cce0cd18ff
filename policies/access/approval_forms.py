"""Forms of approvals: an approver's decision, and an access rule."""
from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError

from accounts.scopes import InvalidScope, parse_scope
from jitportal.lib.numbers import AsciiIntegerField

from . import validation
from .approvals import MAX_COMMENT
from .forms import OneTimeForm, new_token
from .models import MAX_APPROVALS, AccessRule
from .patterns import pattern_problem

MAX_WINDOW_MINUTES = 24 * 60  # Azure's longest window (PT24H)
MAX_PENDING_MINUTES = 366 * 24 * 60  # a year: any longer wait is beyond what a date can hold or anyone means


class DecisionForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=MAX_COMMENT,
                              label="Comment", help_text="Required to deny; shown to the requester.")
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("deny", "Deny")], widget=forms.HiddenInput,
                                 required=False)


def _numbers(text: str) -> list[int]:
    """The port numbers typed; an empty box is none (any port), while separators alone are refused, never read as
    any port."""
    parts = [part for part in re.split(r"[\s,]+", (text or "").strip()) if part]
    if (text or "").strip() and not parts:
        raise ValidationError(PORTS_SEPARATORS_ONLY, code="ports_separators_only")
    numbers = []
    for part in parts:
        if not part.isascii():
            raise ValidationError(f"'{part}' is not a port number: type ports with the digits 0 to 9.")
        # int() reads no more than 4,300 digits (ValueError): a port has at most five, leading zeros aside.
        digits = part.lstrip("0")
        if not part.isdigit() or len(digits) > 5 or not 0 < int(digits or "0") < 65536:
            raise ValidationError(f"'{part}' is not a port number (1 to 65535).")
        numbers.append(int(digits))
    return sorted(set(numbers))


# What a rule's Ports and Sources fields typed as separators alone (" , , ") are told: they name no port or source,
# and only an empty box means any.
PORTS_SEPARATORS_ONLY = ("Enter port numbers separated by commas: separators alone name no port. For any port, leave "
                         "the box empty.")
# What a rule's Sources field typed as separators alone (" , , ") is told: it names no source, and only an empty box
# means any source.
SOURCES_SEPARATORS_ONLY = ("Enter CIDR ranges or *, separated by commas: separators alone name no source. For any "
                           "source, leave the box empty.")


def _prefixes(text: str) -> list[str]:
    """The ranges typed (``*`` for any source); an empty box is none (any source), while separators alone are
    refused, never read as any source."""
    parts = [part for part in re.split(r"[\s,]+", (text or "").strip()) if part]
    if (text or "").strip() and not parts:
        raise ValidationError(SOURCES_SEPARATORS_ONLY, code="sources_separators_only")
    prefixes = []
    for part in parts:
        prefixes.append("*" if part.lower() in validation.ANY_WORDS else validation.parse_source(
            "range", part, check_width=False))  # a rule's range opens nothing: a deny rule may cover a wide one
    return list(dict.fromkeys(prefixes))


def _approvals_field(minimum: int, label: str, help_text: str) -> AsciiIntegerField:
    """A number of approvals from ``minimum`` to ``MAX_APPROVALS`` (the number input carries both bounds), filled in
    with ``minimum`` on a new rule: a deny or auto-approve rule, which asks for no approvals, is saved without them."""
    message = f"Give a number of approvals from {minimum} to {MAX_APPROVALS}."
    return AsciiIntegerField(min_value=minimum, max_value=MAX_APPROVALS, label=label, help_text=help_text,
                              initial=minimum, error_messages={"min_value": message, "max_value": message})


def _minutes_field(minimum: int, maximum: int, label: str, help_text: str) -> AsciiIntegerField:
    """An optional number of minutes from ``minimum`` to ``maximum`` (0 would read as "no limit")."""
    message = f"Give a number of minutes from {minimum} to {maximum}, or leave it empty."
    return AsciiIntegerField(required=False, min_value=minimum, max_value=maximum, label=label, help_text=help_text,
                              error_messages={"min_value": message, "max_value": message})


class AccessRuleForm(forms.ModelForm):
    """An access rule; ports and sources as comma-separated text."""

    approvals_required = _approvals_field(1, "Approvals required", f"Manual: approvals needed (1 to {MAX_APPROVALS}).")
    second_level_approvals = _approvals_field(
        0, "Second-level approvals",
        f"Manual: further approvals, by other approvers, after the first level (0: none; at most {MAX_APPROVALS}).")
    max_duration_minutes = _minutes_field(
        5, MAX_WINDOW_MINUTES, "Longest window (minutes)",
        f"Auto: applies only to windows up to this long (5 to {MAX_WINDOW_MINUTES}; empty: any length).")
    pending_minutes = _minutes_field(
        1, MAX_PENDING_MINUTES, "Decision deadline (minutes)",
        "Manual: a request not decided within this expires (empty: the portal's default).")
    ports_text = forms.CharField(required=False, label="Ports", help_text="Comma-separated; empty: any port.")
    sources_text = forms.CharField(required=False, label="Sources",
                                   help_text="CIDR ranges or *, comma-separated; empty: any source.")

    class Meta:
        model = AccessRule
        fields = ("name", "scope", "effect", "max_duration_minutes", "hours_start", "hours_end", "weekdays_only",
                  "approvals_required", "second_level_approvals", "pending_minutes", "justification_pattern",
                  "justification_hint", "message", "enabled")
        widgets = {"hours_start": forms.TimeInput(attrs={"type": "time"}),
                   "hours_end": forms.TimeInput(attrs={"type": "time"}),
                   "scope": forms.TextInput(attrs={"size": 90}),
                   "justification_pattern": forms.TextInput(attrs={"size": 40}),
                   "justification_hint": forms.TextInput(attrs={"size": 60}),
                   "message": forms.TextInput(attrs={"size": 60})}
        labels = {"hours_start": "Hours from", "hours_end": "Hours until", "message": "Deny message"}
        help_texts = {"hours_start": "Auto: only windows lying within these hours, in the portal's time zone (empty: "
                                     "any time of day).",
                      "hours_end": "Auto: where those hours end; before their start, they run across midnight."}

    field_order = ("name", "scope", "effect", "ports_text", "sources_text", "approvals_required",
                   "second_level_approvals", "pending_minutes", "max_duration_minutes", "hours_start", "hours_end",
                   "weekdays_only", "justification_pattern", "justification_hint", "message", "enabled")

    def __init__(self, *args, may_manage_scope, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.may_manage_scope = may_manage_scope
        if self.instance.pk:
            self.initial.setdefault("ports_text", ", ".join(str(p) for p in self.instance.ports))
            self.initial.setdefault("sources_text", ", ".join(self.instance.source_prefixes))
        self.fields["scope"].widget.attrs["placeholder"] = "/subscriptions/…/resourceGroups/…"

    def clean_scope(self) -> str:
        try:
            scope = parse_scope(self.cleaned_data["scope"]).id
        except InvalidScope as exc:
            raise ValidationError(str(exc)) from None
        if not self.may_manage_scope(scope):
            raise ValidationError("You do not administer JIT at this scope.")
        return scope

    def clean_ports_text(self) -> list[int]:
        return _numbers(self.cleaned_data.get("ports_text", ""))

    def clean_sources_text(self) -> list[str]:
        return _prefixes(self.cleaned_data.get("sources_text", ""))

    def clean_justification_pattern(self) -> str:
        pattern = self.cleaned_data.get("justification_pattern", "")
        if pattern and (problem := pattern_problem(pattern)) is not None:
            raise ValidationError(problem)
        return pattern

    def clean(self) -> dict:
        data = super().clean()
        if bool(data.get("hours_start")) != bool(data.get("hours_end")):
            self.add_error("hours_end", "Give both ends of the hours, or neither.")
        elif data.get("hours_start") is not None and data.get("hours_start") == data.get("hours_end"):
            self.add_error("hours_end", "The hours end when they start, which holds no window: give another end, "
                                        "or leave both empty for any time of day.")
        return data

    def save(self, commit: bool = True) -> AccessRule:
        self.instance.ports = self.cleaned_data["ports_text"]
        self.instance.source_prefixes = self.cleaned_data["sources_text"]
        return super().save(commit)

    def value_text(self, name: str, value: object) -> str:
        """``value`` of the field ``name`` in words, as a sentence names it (``RuleChanged``'s message)."""
        if isinstance(value, bool):
            return "on" if value else "off"
        if value is None or value == "" or value == []:
            return "empty"
        if name == "effect":
            return str(dict(AccessRule.Effect.choices).get(value, value))
        if isinstance(value, list):
            return ", ".join(str(item) for item in value)
        if hasattr(value, "strftime"):
            return value.strftime("%H:%M")
        return str(value)


class NewAccessRuleForm(OneTimeForm, AccessRuleForm):
    """A new access rule, sent once (its one-time ``token``): sent again, it finds the rule it made."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.initial.setdefault("token", new_token())
