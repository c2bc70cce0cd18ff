"""The request form: VMs and their ports, where the requester connects from, for how long, and why."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from policies.models import VirtualMachine
from policies.rules import ANY_SOURCE, PORT_LABELS, PortRule, duration_label

from . import approvals, validation
from .client_ip import ClientAddress
from .services import Selection

SOURCE_CHOICES = [("my_ip", "My IP"), ("ip", "A specific IP"), ("range", "An IP range (e.g. a proxy's)"),
                  ("any", "Any (*)")]
TOKEN_ALTERED = "This form expired or was altered; check your choices and send it again."
TOKEN_PATTERN = re.compile(r"[0-9a-f]{32}")


def new_token() -> str:
    """A one-time token for one rendering of the form (a second submit of it finds the first request)."""
    return uuid.uuid4().hex


class OneTimeForm(forms.Form):
    """A form sent once, by its hidden ``token`` (``new_token``). A missing or altered token is an error on the
    whole form, shown at its top (a hidden field's errors are never displayed), and the form shown again carries a
    fresh token so that sending it again works."""

    token = forms.CharField(widget=forms.HiddenInput, required=False, strip=False)

    def clean(self) -> dict:
        data = super().clean()
        if not TOKEN_PATTERN.fullmatch(data.get("token") or ""):
            data.pop("token", None)
            self.data = self.data.copy()
            self.data["token"] = new_token()
            self.add_error(None, TOKEN_ALTERED)
        return data


def port_choices(vms: list[VirtualMachine]) -> list[tuple[str, str]]:
    choices = []
    for vm in vms:
        for port in vm.ports or []:
            rule = PortRule.from_azure(port)
            label = PORT_LABELS.get(rule.number, "")
            choices.append((f"{vm.pk}:{rule.number}",
                            f"{vm.name} · {rule.number}{f' ({label})' if label else ''} · up to "
                            f"{duration_label(rule.max_duration)} · from "
                            f"{', '.join('Any' if s == ANY_SOURCE else s for s in rule.sources)}"))
    return choices


class PortsField(forms.MultipleChoiceField):
    """The ports ticked (``<vm pk>:<number>``). One not offered, as a port removed from the VM's JIT policy since the
    form was shown, is named by its VM and number (``vm_names``: VM pk → name), not by the form's own value."""

    vm_names: dict[str, str]

    def validate(self, value) -> None:
        for item in value or []:
            if not self.valid_value(item):
                vm_pk, _, number = str(item).partition(":")
                name = getattr(self, "vm_names", {}).get(vm_pk)
                where = f"Port {number} of {name}" if name and number.isascii() and number.isdigit() else "A port"
                raise ValidationError(f"{where} is not in its JIT policy (any more): check the ports and send the "
                                      "form again.", code="invalid_choice")
        super().validate(value)


class AccessRequestForm(OneTimeForm):
    """One request over ``vms`` (already restricted to what the user may request)."""

    ports = PortsField(widget=forms.CheckboxSelectMultiple, label="Ports",
                       error_messages={"required": "Select at least one port to open."})
    source_kind = forms.ChoiceField(choices=SOURCE_CHOICES, initial="my_ip", widget=forms.RadioSelect,
                                    label="Allowed source IP")
    source_ip = forms.CharField(required=False, label="IP address", max_length=64)
    source_range = forms.CharField(required=False, label="IP range", max_length=64,
                                   help_text="A CIDR such as 203.0.113.0/24 (your proxy's range).")
    duration = forms.TypedChoiceField(coerce=int, label="Time range")
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=500,
                                    label="Justification",
                                    error_messages={"required": "Say why you need access."},
                                    help_text="Sent to Azure with your user name and the portal's request number.")
    start_at = forms.DateTimeField(required=False, label=f"Start later ({settings.TIME_ZONE})",
                                   widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                   input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
                                   help_text="Leave empty to start now (or as soon as it is approved). A scheduled "
                                             "window opens at its start, not before.")

    def __init__(self, *args, vms: list[VirtualMachine], my_ip: ClientAddress | None,
                 duration_choices: list[tuple[int, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.vms = {vm.pk: vm for vm in vms}
        self.my_ip = my_ip
        self.fields["ports"].choices = port_choices(vms)
        self.fields["ports"].vm_names = {str(vm.pk): vm.name for vm in vms}
        self.fields["duration"].choices = duration_choices
        self.justification_rules = approvals.justification_rules(vms)
        self.justification_hints = approvals.justification_hints(vms, self.justification_rules)
        if self.justification_hints:  # said before a refusal does
            field = self.fields["justification"]
            field.help_text = " ".join([*self.justification_hints, str(field.help_text)])
        if not self.is_bound:
            self.initial.setdefault("token", new_token())
            self.initial.setdefault("ports", [value for value, _ in self.fields["ports"].choices])
            self.initial.setdefault("duration", 3600 if any(v == 3600 for v, _ in duration_choices)
                                    else duration_choices[0][0] if duration_choices else None)
        if my_ip is not None:
            self.fields["source_kind"].choices = [
                ("my_ip", f"My IP ({my_ip.address})"), *SOURCE_CHOICES[1:]]
        else:  # not detected: the requester types it
            self.fields["source_kind"].initial = "ip"

    def clean_source_prefix(self) -> str:
        kind = self.cleaned_data.get("source_kind")
        if kind == "my_ip":
            if self.my_ip is None:
                raise ValidationError("Your IP address could not be detected; enter it.")
            return self.my_ip.prefix
        value = self.cleaned_data.get("source_ip") if kind == "ip" else self.cleaned_data.get("source_range")
        return validation.parse_source(kind, value or "")

    def clean(self) -> dict:
        data = super().clean()
        kind = data.get("source_kind")
        typed = [name for name in ("source_ip", "source_range") if (data.get(name) or "").strip()]
        if kind in ("my_ip", "any") and typed:
            chosen = dict(SOURCE_CHOICES)[kind]
            self.add_error("source_kind", f"You typed an address but chose “{chosen}”: choose “A specific IP” or "
                                          "“An IP range” to use it, or clear the box.")
            return data
        box = {"ip": "source_ip", "range": "source_range"}.get(kind, "source_kind")
        if kind is None or box in self.errors:
            return data  # the choice or the box already says what is wrong with it
        try:
            data["source_prefix"] = self.clean_source_prefix()
        except ValidationError as exc:  # on the box the address was typed in, so that box is marked invalid
            self.add_error(box, exc)
        else:  # a range typed with host bits is stored as its network: the request page says so
            data["source_note"] = validation.host_bits_note(data.get("source_range") or "", data["source_prefix"]
                                                            ) if kind == "range" else ""
        data["source_warning"] = self.my_ip.warning if (self.my_ip and data.get("source_kind") == "my_ip") else ""
        if data.get("duration"):
            data["window"] = timedelta(seconds=int(data["duration"]))
        return data

    def add_refusal(self, exc: ValidationError) -> None:
        """Show what ``request_create`` refused at the field it concerns (by the error's ``code``; the source at
        the box or choice it came from), the rest at the top of the form."""
        source = {"ip": "source_ip", "range": "source_range"}.get(self.cleaned_data.get("source_kind"), "source_kind")
        fields = {"source_too_wide": source, "source_not_allowed": source, "window_too_short": "duration",
                  "window_too_long": "duration", "window_unreadable": "ports", "start_too_soon": "start_at",
                  "start_too_late": "start_at", "justification": "justification", "port_not_in_policy": "ports",
                  "no_ports": "ports"}
        for error in exc.error_list:
            field = fields.get(error.code)
            self.add_error(field if field in self.fields else None, error)

    def selections(self) -> list[Selection]:
        chosen: dict[int, list[int]] = {}
        for value in self.cleaned_data.get("ports", []):
            vm_pk, number = value.split(":")
            chosen.setdefault(int(vm_pk), []).append(int(number))
        return [Selection(self.vms[pk], tuple(numbers)) for pk, numbers in chosen.items()]


class ExtendForm(OneTimeForm):
    duration = forms.TypedChoiceField(coerce=int, label="New time range (from now)")

    def __init__(self, *args, duration_choices: list[tuple[int, str]], unavailable: str = "", **kwargs) -> None:
        """``unavailable``: why no time range is offered now (``duration_choices`` is empty), shown in its place."""
        super().__init__(*args, **kwargs)
        self.unavailable = unavailable
        self.fields["duration"].choices = duration_choices
        self.fields["duration"].widget.attrs["aria-describedby"] = "extend-help"
        if not self.is_bound:
            self.initial.setdefault("token", new_token())
