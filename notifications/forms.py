"""Forms of notifications: a user's e-mail preferences and a webhook."""
from __future__ import annotations

from django import forms

from accounts import authz
from accounts.roles import SETTINGS_WRITE
from accounts.scopes import InvalidScope, normalize_scope
from policies.access.signals import EVENTS

from . import transport
from .models import APPROVER_EVENTS, Webhook, event_label

EVENT_HELP = {
    "submitted": "a request was stored",
    "needs_approval": "a request waits for approval",
    "approved": "a request was approved",
    "denied": "a request was denied",
    "approval_expired": "nobody decided in time",
    "opened": "Azure opened the ports",
    "expiring": "the window ends soon",
    "closed": "the ports were closed or the window ended",
    "failed": "Azure refused or the portal gave up",
}


def _choices(events) -> list[tuple[str, str]]:
    return [(e, f"{event_label(e)} — {EVENT_HELP[e]}") for e in events]


class PreferenceForm(forms.Form):
    """Which e-mails the user gets: about their own requests, and (``approver``: to an approver anywhere) about
    requests they may approve; without the role that part is left out, and what was stored for it is kept."""

    requester_events = forms.MultipleChoiceField(
        label="About my own requests", choices=_choices(EVENTS), required=False,
        widget=forms.CheckboxSelectMultiple)
    approver_events = forms.MultipleChoiceField(
        label="About requests I may approve", choices=_choices(APPROVER_EVENTS), required=False,
        widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, approver: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not approver:
            del self.fields["approver_events"]


class WebhookForm(forms.ModelForm):
    """A webhook the editing user may manage: its scope must be one they administer (empty: everywhere)."""

    # Like a password: the path or query of a Slack or Teams incoming-webhook URL is its credential. What the user
    # just typed comes back on an invalid form; the stored URL never does (``__init__``).
    url = forms.URLField(label="URL", max_length=1000, assume_scheme="https",
                         widget=forms.PasswordInput(render_value=True, attrs={
                             "size": 80, "autocomplete": "off", "spellcheck": "false"}),
                         help_text="Where the portal POSTs (https; Slack or Teams incoming webhook URLs work too). "
                                   "It is kept like a password: pages show only its scheme and host.")
    events = forms.MultipleChoiceField(choices=_choices(EVENTS), widget=forms.CheckboxSelectMultiple,
                                       help_text="The events this webhook is sent.")

    class Meta:
        model = Webhook
        fields = ["name", "url", "format", "events", "scope", "active"]
        widgets = {"scope": forms.TextInput(attrs={"size": 100})}
        help_texts = {"scope": "Only requests touching a VM at or under this ARM scope, and of those only what a "
                               "reader of this scope sees on the request's page: its VMs here (how many it has "
                               "elsewhere, never which), its justification and approvers' comments withheld where "
                               "they name a VM elsewhere, and Azure's errors, the rules' reasons and JIT removals "
                               "withheld while it has VMs elsewhere. Leave it empty for every request, all of it: "
                               "only administrators of every scope (superusers) may."}

    def __init__(self, *args, actor, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor
        if self.instance.pk:  # editing: the stored URL is not sent to the browser; leaving the field empty keeps it
            self.initial["url"] = ""
            self.fields["url"].required = False
            self.fields["url"].help_text = (
                f"Now {self.instance.masked_url} (the rest is not shown). Leave it empty to keep it, or enter the "
                "whole new URL to replace it.")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if not url and self.instance.pk:
            return self.instance.url
        try:
            transport.check_url(url)
        except transport.BlockedAddress as exc:
            raise forms.ValidationError(str(exc)) from exc
        return url

    def clean_scope(self) -> str:
        text = self.cleaned_data.get("scope", "").strip()
        if not text:
            if not authz.has_permission(self.actor, SETTINGS_WRITE, authz.EVERYWHERE):
                raise forms.ValidationError("Name a scope you administer: only administrators of every scope may "
                                            "add a webhook for every request.")
            return ""
        try:
            scope = normalize_scope(text)
        except InvalidScope as exc:
            raise forms.ValidationError(str(exc)) from exc
        if not authz.has_permission(self.actor, SETTINGS_WRITE, scope):
            raise forms.ValidationError("You may only add webhooks at scopes you administer.")
        return scope
