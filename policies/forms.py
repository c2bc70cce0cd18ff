"""Forms of the inventory, JIT policy and subscription pages. Validation rules live in ``policies.rules``."""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from accounts import authz
from accounts.roles import SETTINGS_WRITE
from jitportal.lib.numbers import AsciiIntegerField

from . import rules
from .models import Subscription, VirtualMachine, VmState

PROTOCOL_CHOICES = [("TCP", "TCP"), ("UDP", "UDP"), ("*", "Any")]
DURATION_UNITS = [("hours", "hours"), ("minutes", "minutes")]
PORT_RANGE = "Enter a port number between 1 and 65535."
PORT_DIGITS = "Type the port number with the digits 0 to 9."
DURATION_RANGE = "The maximum request time must be between 5 minutes and 24 hours."
WHOLE_TIME = "Enter whole hours (0 to 24) and minutes (0 to 59)."


class PortForm(forms.Form):
    """One port of a VM's JIT configuration."""

    number = AsciiIntegerField(label="Port", min_value=1, max_value=65535, error_messages={
        "invalid": PORT_RANGE, "min_value": PORT_RANGE, "max_value": PORT_RANGE, "not_ascii": PORT_DIGITS})
    protocol = forms.ChoiceField(choices=PROTOCOL_CHOICES, initial="*")
    sources = forms.CharField(label="Allowed source IPs", initial="*", max_length=rules.MAX_SOURCES_TEXT,
                              error_messages={"required": rules.SOURCES_REQUIRED},
                              help_text="* for Any, or IPv4/IPv6 addresses and CIDR ranges separated by commas.")
    max_hours = AsciiIntegerField(label="Max hours", min_value=0, max_value=24, initial=3, error_messages={
        "invalid": WHOLE_TIME, "min_value": DURATION_RANGE, "max_value": DURATION_RANGE})
    max_minutes = AsciiIntegerField(label="Max minutes", min_value=0, max_value=59, initial=0, required=False,
                                     error_messages={"invalid": WHOLE_TIME, "min_value": WHOLE_TIME,
                                                     "max_value": WHOLE_TIME})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The port's service (SSH, RDP, WinRM…) shows next to its number, and a screen reader reads it with the field.
        self.fields["number"].widget.attrs["aria-describedby"] = f"{self['number'].auto_id}_service"

    @property
    def service(self) -> str:
        """What the port the row shows is for, when it is a well-known one ("SSH" for 22), else ""."""
        value = str(self["number"].value() or "").strip()
        return rules.PORT_LABELS.get(int(value), "") if value.isascii() and value.isdigit() and len(value) <= 5 else ""

    def clean_sources(self) -> tuple[str, ...]:
        return rules.parse_sources(self.cleaned_data["sources"])

    def clean(self) -> dict:
        data = super().clean()
        if "max_hours" in data:
            exact = self.initial.get("max_duration")
            if exact and not {"max_hours", "max_minutes"} & set(self.changed_data):
                try:  # left alone: Azure's duration as it is, seconds included
                    data["max_duration"] = rules.validate_duration(exact)
                    return data
                except ValidationError:
                    pass  # out of range: the hours and minutes shown say why
            minutes = data.get("max_hours", 0) * 60 + (data.get("max_minutes") or 0)
            try:
                data["max_duration"] = rules.validate_duration(f"PT{minutes}M")
            except ValidationError as exc:
                self.add_error("max_hours", exc)
        return data

    def port_rule(self) -> rules.PortRule:
        data = self.cleaned_data
        return rules.PortRule(data["number"], data["protocol"], tuple(data["sources"]), data["max_duration"])

    @staticmethod
    def initial_for(rule: rules.PortRule) -> dict:
        """The row of ``rule``. Azure's exact duration rides along as ``max_duration`` and is kept when the admin
        leaves the hours and minutes alone; ``duration_note`` says what Azure holds when the fields cannot show it
        (seconds, or a duration the portal cannot read, which leaves the fields empty)."""
        initial = {"number": rule.number, "protocol": rule.protocol, "sources": ", ".join(rule.sources),
                   "max_duration": rule.max_duration}
        try:
            delta = rules.parse_duration(rule.max_duration)
        except ValidationError:
            return initial | {"max_hours": None, "max_minutes": None, "duration_note": (
                f"Azure holds the maximum request time '{rule.max_duration}', which the portal cannot read: "
                "enter the time this port should allow.")}
        hours, rest = divmod(int(delta.total_seconds()), 3600)
        minutes, seconds = divmod(rest, 60)
        initial |= {"max_hours": hours, "max_minutes": minutes}
        if seconds:
            initial["duration_note"] = (f"Azure holds {rule.max_duration}: it stays so unless you change the hours "
                                        "or minutes (whole minutes).")
        return initial


class BasePortFormSet(forms.BaseFormSet):
    """A VM's ports: at least one, no port twice (removing every port is "Remove JIT", a separate action)."""

    def clean(self) -> None:
        if any(self.errors):
            return
        seen: dict[int, int] = {}
        kept = 0
        for index, form in enumerate(self.forms):
            if not form.cleaned_data or self._should_delete_form(form):
                continue
            kept += 1
            number = form.cleaned_data["number"]
            if number in seen:
                form.add_error("number", f"Port {number} is listed twice.")
                raise ValidationError(f"Port {number} is listed twice.", code="duplicate_port")
            seen[number] = index
        if kept == 0:
            raise ValidationError("Keep at least one port (to take JIT off a VM, use Remove JIT).", code="no_ports")

    def _construct_form(self, i: int, **kwargs) -> PortForm:
        """A submitted row compares with the current port of its number (and protocol, when two share it), not with
        the port at its position: a sync may have reordered the ports since the form was shown, and a row must not
        take another port's exact duration. A row added to the ports shown compares with nothing."""
        if self.is_bound and "initial" not in kwargs:
            kwargs["initial"] = self._current_port(i)
        return super()._construct_form(i, **kwargs)

    def _current_port(self, i: int) -> dict:
        if i >= self.initial_form_count():
            return {}
        prefix = self.add_prefix(i)
        number = str(self.data.get(f"{prefix}-number", "")).strip()
        number = int(number) if number.isascii() and number.isdigit() and len(number) <= 5 else None  # else the field
        # says why
        same = [row for row in self.initial or [] if number is not None and row["number"] == number]
        protocol = self.data.get(f"{prefix}-protocol")
        return next((row for row in same if row["protocol"] == protocol), same[0] if same else {})

    @property
    def port_services(self) -> str:
        """The well-known ports and their services, as JSON, for port_rules.js to name a port as it is typed."""
        return json.dumps(rules.PORT_LABELS)

    def port_rules(self) -> list[rules.PortRule]:
        return [form.port_rule() for form in self.forms
                if form.cleaned_data and not self._should_delete_form(form)]


PortFormSet = forms.formset_factory(PortForm, formset=BasePortFormSet, extra=1, can_delete=True, max_num=50,
                                    validate_max=True)


def port_formset(vm: VirtualMachine | None, data=None, ports: list[dict] | None = None) -> BasePortFormSet:
    """The ports formset of ``vm``: ``ports`` (Azure's shape; default: its current ones), or the OS default for a VM
    without JIT; without a VM (several VMs enabled at once) the recommended ports."""
    if vm is None:
        current = rules.recommended_ports()
    else:
        current = ([rules.PortRule.from_azure(p) for p in (vm.ports if ports is None else ports)]
                   or rules.default_ports(vm.os_type))
    return PortFormSet(data=data, initial=[PortForm.initial_for(rule) for rule in current], prefix="ports")


class RowIdsField(forms.ModelMultipleChoiceField):
    """Row ids; one beyond a 64-bit integer is an invalid choice (the database cannot even compare it). An id of no
    row the queryset holds (removed by a sync since it was selected, or out of the user's sight) is left out and
    counted in ``missing``, not an error that would throw away the rest of the form."""

    missing = 0

    def _check_values(self, value):
        numbers = set()
        for pk in value:
            try:
                number = int(str(pk))
            except ValueError:
                continue  # not a number: the parent reports it
            if abs(number) >= 2**63:
                raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice",
                                      params={"value": pk})
            numbers.add(number)
        found = set(self.queryset.filter(pk__in=numbers).values_list("pk", flat=True)) if numbers else set()
        self.missing = len(numbers - found)
        return super()._check_values([pk for pk in value if _row_id(pk) in found or _row_id(pk) is None])


def _row_id(value) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


class BulkEnableForm(forms.Form):
    """The selected VMs to enable JIT on (with the ports of the formset beside it), from ``queryset`` (the VMs the
    user may see). ``cleaned_data["vm"]`` holds those still Not configured that ``may_configure``, that no pending
    enable or removal holds (``blocked``: VM pk → the kind of that change, for a list of VMs) and whose name fits
    with their policy's (``misnamed``: VM pk → why not); ``left_out`` the others (configured or found unsupported
    since they were selected, in a scope where the user only reads, being enabled or having JIT removed, which the
    inventory does not let one select, or named too long for a JIT policy), so the page can name them and keep the
    admin's edits."""

    vm = RowIdsField(queryset=VirtualMachine.objects.none(),
                     error_messages={"required": "Select at least one VM."})

    def __init__(self, *args, queryset=None, may_configure: Callable[[VirtualMachine], bool] = lambda vm: True,
                 blocked: Callable[[list[VirtualMachine]], dict[int, str]] = lambda vms: {},
                 misnamed: Callable[[list[VirtualMachine]], dict[int, str]] = lambda vms: {}, **kwargs):
        super().__init__(*args, **kwargs)
        self.left_out: list[VirtualMachine] = []
        self.may_configure = may_configure
        self.blocked = blocked
        self.misnamed = misnamed
        self.pending: dict[int, str] = {}
        self.too_long: dict[int, str] = {}
        if queryset is not None:
            self.fields["vm"].queryset = queryset

    def _kept(self, vm: VirtualMachine) -> bool:
        return (vm.state == VmState.NOT_CONFIGURED and self.may_configure(vm) and vm.pk not in self.pending
                and vm.pk not in self.too_long)

    def clean_vm(self) -> list[VirtualMachine]:
        chosen = list(self.cleaned_data["vm"])
        self.pending = self.blocked(chosen) if chosen else {}
        self.too_long = self.misnamed(chosen) if chosen else {}
        self.left_out = [vm for vm in chosen if not self._kept(vm)]
        return [vm for vm in chosen if self._kept(vm)]

    def _why(self, vm: VirtualMachine) -> str:
        from .selectors import enable_blocked_message

        if not self.may_configure(vm):
            return "you may not configure JIT on it."
        if vm.state == VmState.CONFIGURED:
            return "it has JIT now (configured since you selected it); edit it from its page."
        if vm.state == VmState.UNSUPPORTED:
            return f"it does not support JIT: {vm.unsupported_message}"
        if vm.pk in self.pending:
            return enable_blocked_message("it", self.pending[vm.pk])
        return self.too_long[vm.pk]

    @property
    def missing(self) -> int:
        """How many selected ids name no VM the user may see now (removed by a sync since, or out of their scope)."""
        return self.fields["vm"].missing

    @property
    def taken_out(self) -> bool:
        """Whether any selected VM was left out (``left_out``, or ``missing``)."""
        return bool(self.left_out or self.missing)

    def left_out_messages(self) -> list[str]:
        """Why each VM of ``left_out`` was taken out of the selection, and how many are ``missing``."""
        gone = ([f"{self.missing:,} selected VM{'s are' if self.missing != 1 else ' is'} no longer in the inventory "
                 "you may see (removed from Azure, or out of your scope) and "
                 f"{'were' if self.missing != 1 else 'was'} taken out of the selection."] if self.missing else [])
        return gone + [f"{vm.name} was taken out of the selection: {self._why(vm)}" for vm in self.left_out]


class SubscriptionForm(forms.ModelForm):
    """Register or edit a subscription; the credential is a reference to the environment, never a secret. A new
    subscription must be one ``actor`` administers before anything else is said of it (registered or not)."""

    credential_ref = forms.ChoiceField(label="Credential reference")
    arm_endpoint = forms.URLField(
        label="ARM endpoint", assume_scheme="https", initial="https://management.azure.com",
        help_text="The Azure Resource Manager URL the portal calls for this subscription: "
                  "https://management.azure.com in Azure's global cloud (https://management.usgovcloudapi.net in "
                  "Azure Government, https://management.chinacloudapi.cn in Azure operated by 21Vianet), or an Azure "
                  "Stack Hub's, listed in CLOUD_ENDPOINT_HOSTS.")
    authority = forms.URLField(
        label="Authority", assume_scheme="https", initial="https://login.microsoftonline.com",
        help_text="The Microsoft Entra ID URL the portal takes its tokens from with the credential: "
                  "https://login.microsoftonline.com in Azure's global cloud (https://login.microsoftonline.us in "
                  "Azure Government, https://login.chinacloudapi.cn in Azure operated by 21Vianet).")

    class Meta:
        model = Subscription
        fields = ["display_name", "tenant_id", "subscription_id", "credential_ref", "arm_endpoint", "authority",
                  "ca_bundle", "enabled"]
        labels = {"ca_bundle": "CA bundle"}

    def __init__(self, *args, actor, **kwargs):
        super().__init__(*args, **kwargs)
        self.actor = actor
        refs = sorted(getattr(settings, "PORTAL_CREDENTIALS", {}))
        self.fields["credential_ref"].choices = [(ref, ref) for ref in refs]
        if self.instance.pk:
            self.fields["subscription_id"].disabled = True

    def _guid(self, field: str) -> str:
        value = (self.cleaned_data.get(field) or "").strip().lower()
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValidationError("Enter a GUID such as 00000000-0000-0000-0000-000000000000.") from None

    def clean_tenant_id(self) -> str:
        return self._guid("tenant_id")

    def _https(self, field: str) -> str:
        from .gateway import endpoint_problem

        value = self.cleaned_data.get(field) or ""
        if not value.lower().startswith("https://"):
            raise ValidationError("Enter an https:// URL: Azure SDKs send tokens over TLS only.")
        if (problem := endpoint_problem(value)) is not None:
            raise ValidationError(problem)
        return value

    def clean_ca_bundle(self) -> str:
        from .gateway import ca_bundle_problem

        value = (self.cleaned_data.get("ca_bundle") or "").strip()
        if value and (problem := ca_bundle_problem(value)) is not None:
            raise ValidationError(problem)
        return value

    def clean_arm_endpoint(self) -> str:
        return self._https("arm_endpoint")

    def clean_authority(self) -> str:
        return self._https("authority")

    def clean_subscription_id(self) -> str:
        value = self._guid("subscription_id")
        if not self.instance.pk and not authz.has_permission(self.actor, SETTINGS_WRITE, f"/subscriptions/{value}"):
            # Before the clash check: "already registered" would tell whether another scope's subscription is here.
            raise ValidationError("Only admins at the subscription's scope may register it.")
        clash = Subscription.objects.filter(subscription_id=value).exclude(pk=self.instance.pk)
        if clash.exists():
            raise ValidationError("This subscription is already registered.")
        return value
