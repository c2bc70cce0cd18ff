"""Access requests: a requester asks for ports on VMs for a time window; the portal opens them through Azure.

``AccessRequest`` is what the user submitted (stored before any cloud call); ``AccessRequestVm`` one VM of it
(and the JIT policy it belongs to: one ``initiate`` per policy); ``AccessRequestPort`` one port with its own
state machine: [pending → (denied)] → [scheduled →] queued → opening → open → expired | closed, or failed with
Azure's reason. ``AccessRule`` says per scope what needs approval (deny → auto-approve → manual) and
``Approval`` is one approver's decision.
"""
from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models

MAX_APPROVALS = 10  # per level of an access rule: more approvers than any team has, far below the column's limit
# How the reason of a port Close now closed begins when a newer request holds its rule (``left_open``)
LEFT_OPEN = "The access remains open under request #"

# The tails the portal ends its Azure justifications with: "(portal request #42, <id>)" on the initiate that opens
# a request (``AccessRequest.azure_justification``), "close portal request #42 early (<id>)" on the one that closes
# it behind a firewall.
_PORTAL_TAIL = re.compile(r"(?:\(portal request #(?P<opened>\d+), |close portal request #(?P<closed>\d+) early \()"
                          r"(?P<correlation>[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})\)\s*$", re.IGNORECASE)


def portal_request_in(justification: object) -> tuple[int, str, bool] | None:
    """(request number, correlation id, whether it is the early close) of the portal request an Azure
    justification ends by naming, or ``None``."""
    found = _PORTAL_TAIL.search(justification) if isinstance(justification, str) else None
    if found is None:
        return None
    number = found["opened"] or found["closed"]
    return int(number), found["correlation"].lower(), found["closed"] is not None


class PortState(models.TextChoices):
    PENDING = "pending", "Awaiting approval"
    SCHEDULED = "scheduled", "Scheduled"
    QUEUED = "queued", "Queued"
    OPENING = "opening", "Opening"
    OPEN = "open", "Open"
    EXPIRED = "expired", "Expired"
    CLOSED = "closed", "Closed"
    FAILED = "failed", "Failed"
    DENIED = "denied", "Denied"


class ApprovalState(models.TextChoices):
    NOT_REQUIRED = "not_required", "Auto-approved"
    PENDING = "pending", "Awaiting approval"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    EXPIRED = "expired", "Not approved in time"
    CANCELLED = "cancelled", "Cancelled"


__all__ = ["AccessRequest", "AccessRequestPort", "AccessRequestVm", "AccessRule", "Approval", "ApprovalState",
           "PortState"]

TRANSITIONAL = (PortState.QUEUED, PortState.OPENING)
WAITING = (PortState.PENDING, PortState.SCHEDULED)
ACTIVE = (PortState.PENDING, PortState.SCHEDULED, PortState.QUEUED, PortState.OPENING, PortState.OPEN)
FINAL = (PortState.EXPIRED, PortState.CLOSED, PortState.FAILED, PortState.DENIED)


class AccessRequest(models.Model):
    """What a requester asked for, with the aggregate state of its ports (for lists and filters)."""

    class Kind(models.TextChoices):
        NEW = "new", "Request"
        EXTEND = "extend", "Extension"

    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="access_requests")
    requester_name = models.CharField(max_length=255, help_text="User name as sent to Azure in the justification.")
    justification = models.TextField()
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.NEW)
    extends = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="extensions")
    state = models.CharField(max_length=16, choices=PortState.choices, default=PortState.QUEUED)
    idempotency_key = models.CharField(max_length=64, unique=True,
                                       help_text="The form's one-time token: a second submit finds this row.")
    idempotency_fingerprint = models.CharField(
        max_length=64, blank=True, help_text="The API body's SHA-256: the key replayed with another body is refused.")
    correlation_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False,
                                      help_text="Sent to Azure in the justification; finds the request there.")
    source_prefix = models.CharField(max_length=64, help_text="The source every port of the request opens for.")
    source_sort = models.CharField(max_length=40, blank=True, default="", db_default="", editable=False,
                                   help_text="source_prefix as text that sorts by its numbers (source_order.py).")
    source_kind = models.CharField(max_length=16, blank=True, help_text="my_ip, ip or range.")
    source_warning = models.CharField(max_length=255, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True, help_text="Where the form was submitted from.")
    scheduled_start = models.DateTimeField(null=True, blank=True,
                                           help_text="A scheduled window's start; empty: as soon as approved.")
    approval_state = models.CharField(max_length=16, choices=ApprovalState.choices,
                                      default=ApprovalState.NOT_REQUIRED)
    approvals_required = models.PositiveSmallIntegerField(default=0)
    second_level_approvals = models.PositiveSmallIntegerField(default=0, help_text="0: no second level.")
    approval_expires_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    rule = models.ForeignKey("AccessRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rule_name = models.CharField(max_length=128, blank=True, help_text="The rule that decided, as it was named.")
    end_at = models.DateTimeField(help_text="The latest end time of its ports.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The Requests list of an admin and the dashboard's recent counts: newest first, walked until a page is
            # full, rather than every request in scope sorted.
            models.Index(fields=["-created_at", "-id"], name="acc_req_recent"),
            models.Index(fields=["requester", "-created_at"], name="acc_req_mine"),
            models.Index(fields=["requester", "state", "-created_at"], name="acc_req_mine_state"),
            models.Index(fields=["state", "-created_at"], name="acc_req_state"),
            models.Index(fields=["approval_state", "approval_expires_at"], name="acc_req_pending"),
            # The Requests list sorted by another column: a page walks the index rather than sorting every request
            # in scope; the id (the table's tie-break, ``SortableTable``) ends each.
            models.Index(fields=["end_at", "id"], name="acc_req_sort_end"),
            models.Index(fields=["requester_name", "id"], name="acc_req_sort_requester"),
            models.Index(fields=["state", "id"], name="acc_req_sort_state"),
            models.Index(fields=["kind", "id"], name="acc_req_sort_kind"),
            models.Index(fields=["source_sort", "id"], name="acc_req_sort_source_num"),
            # A request's extensions, newest first (its page): with the statistics of ANALYZE, where nearly every
            # request extends none, SQLite walked every request in the list's order rather than look them up.
            models.Index(fields=["extends", "-created_at", "-id"], name="acc_req_extensions"),
        ]
        constraints = [
            # The approvals list pages by the deadline and the reconcile expires by it: a pending request has one.
            models.CheckConstraint(condition=~models.Q(approval_state="pending") | models.Q(
                approval_expires_at__isnull=False), name="acc_req_pending_has_deadline"),
        ]

    def __str__(self) -> str:
        return f"Request #{self.pk} by {self.requester_name}"

    @property
    def azure_justification(self) -> str:
        """What Azure records with the initiate: who, why, and the portal's request id, last (the tasks find
        Azure's record by that end: ``services.common._find_in_azure``)."""
        return f"{self.requester_name}: {self.justification} (portal request #{self.pk}, {self.correlation_id})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE

    @property
    def is_pending(self) -> bool:
        return self.approval_state == ApprovalState.PENDING and self.closed_at is None

    @property
    def window(self) -> str:
        """The window asked for (the longest of its ports), as words: "1 hour 30 minutes"."""
        from datetime import timedelta

        from .validation import window_label

        return window_label(timedelta(seconds=max((p.duration_seconds for p in self.ports.all()), default=0)))


class AccessRequestVm(models.Model):
    """One VM of a request, with the JIT policy (resource group, location, name) it was requested through."""

    request = models.ForeignKey(AccessRequest, on_delete=models.CASCADE, related_name="vms")
    vm = models.ForeignKey("policies.VirtualMachine", on_delete=models.PROTECT, related_name="access_requests")
    vm_arm_id = models.CharField(max_length=512, help_text="The VM's ARM id as Azure spells it.")
    vm_name = models.CharField(max_length=128)
    subscription_key = models.CharField(max_length=64)
    resource_group = models.CharField(max_length=128, help_text="Lower case (for scoping).")
    policy_key = models.CharField(max_length=512, help_text="ARM id of the JIT policy, lower case.")
    policy_resource_group = models.CharField(max_length=128)
    policy_location = models.CharField(max_length=64)
    policy_name = models.CharField(max_length=128)
    connection_type = models.CharField(max_length=16, blank=True)
    address = models.CharField(max_length=64, blank=True, help_text="The IP to connect to (VM or firewall).")
    address_kind = models.CharField(max_length=16, blank=True, help_text="public, private or firewall.")
    os_type = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["vm_name", "id"]
        constraints = [models.UniqueConstraint(fields=["request", "vm"], name="acc_vm_once_per_request")]

    def __str__(self) -> str:
        return self.vm_name


class AccessRequestPort(models.Model):
    """One port of one VM of a request: its own state, Azure's status, the mapped port and the last error."""

    request = models.ForeignKey(AccessRequest, on_delete=models.CASCADE, related_name="ports")
    request_vm = models.ForeignKey(AccessRequestVm, on_delete=models.CASCADE, related_name="ports")
    policy_key = models.CharField(max_length=512, help_text="Copied from the VM row: the claim's filter.")
    number = models.PositiveIntegerField()
    protocol = models.CharField(max_length=8, blank=True)
    source_prefix = models.CharField(max_length=64)
    duration_seconds = models.PositiveIntegerField()
    end_at = models.DateTimeField(help_text="Planned end; fixed from the moment Azure opens the port.")
    state = models.CharField(max_length=16, choices=PortState.choices, default=PortState.QUEUED)
    azure_status = models.CharField(max_length=32, blank=True)
    azure_status_reason = models.CharField(max_length=64, blank=True)
    mapped_port = models.PositiveIntegerField(null=True, blank=True, help_text="Azure Firewall DNAT port.")
    last_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    azure_request_id = models.CharField(max_length=128, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["request_vm_id", "number"]
        constraints = [models.UniqueConstraint(fields=["request_vm", "number"], name="acc_port_once_per_vm")]
        indexes = [
            models.Index(fields=["state", "end_at"], name="acc_port_due"),
            models.Index(fields=["state", "updated_at"], name="acc_port_stuck"),
            models.Index(fields=["request", "policy_key", "state"], name="acc_port_claim"),
            # Whether a request ever opened (the approvers' queue counts each requester's last 30 days): one look in
            # this index, not a read of each of its ports.
            models.Index(fields=["request"], condition=models.Q(opened_at__isnull=False), name="acc_port_opened"),
        ]

    def __str__(self) -> str:
        return f"{self.number} ({self.get_state_display()})"

    @property
    def closed_early(self) -> bool:
        """Whether the port opened and was closed before its planned end (not expired at it)."""
        return (self.state == PortState.CLOSED and self.opened_at is not None and self.finished_at is not None
                and self.finished_at < self.end_at)

    @property
    def left_open(self) -> bool:
        """Whether Close now closed the port but left Azure's rule in place for a newer request that holds the same
        VM port for the same source (its reason names the request)."""
        return self.state == PortState.CLOSED and self.last_error.startswith(LEFT_OPEN)

    @property
    def window(self) -> str:
        """The window asked for this port, as words: "1 hour"."""
        from datetime import timedelta

        from .validation import window_label

        return window_label(timedelta(seconds=self.duration_seconds))


class AccessRule(models.Model):
    """What a request at a scope needs: refused (deny), opened at once (auto) or N approvals (manual).

    Evaluated for each VM of a request over the enabled rules whose scope contains the VM: a matching deny
    rule refuses; else a matching auto rule opens at once; else a matching manual rule asks for approvals (the
    strictest wins). A VM under no auto or manual rule behaves as Azure does (auto); one under auto or manual
    rules of which none matches needs one approval. Justification patterns of every rule at the scope apply.
    """

    class Effect(models.TextChoices):
        DENY = "deny", "Deny"
        AUTO = "auto", "Auto-approve"
        MANUAL = "manual", "Require approval"

    name = models.CharField(max_length=128)
    scope = models.CharField(max_length=512, help_text="A subscription, resource group or VM id.")
    effect = models.CharField(max_length=8, choices=Effect.choices)
    ports = models.JSONField(default=list, blank=True, help_text="Port numbers it applies to; empty: any port.")
    source_prefixes = models.JSONField(
        default=list, blank=True,
        help_text="Sources it applies to (CIDR or *); empty: any. Deny: a request overlapping one is refused "
                  "(* here: requests for any source). Auto and manual: the request's source must lie inside one.")
    max_duration_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Auto: applies only to windows up to this long.")
    hours_start = models.TimeField(
        null=True, blank=True, help_text="Auto: only windows lying within these hours, from (portal time zone).")
    hours_end = models.TimeField(null=True, blank=True, help_text="Auto: ... until (portal time zone).")
    weekdays_only = models.BooleanField(default=False, help_text="Auto: only windows on Monday to Friday.")
    approvals_required = models.PositiveSmallIntegerField(
        default=1, validators=[MaxValueValidator(MAX_APPROVALS)], help_text="Manual: approvals needed.")
    second_level_approvals = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(MAX_APPROVALS)],
        help_text="Manual: further approvals, by other approvers, after the first level (0: none).")
    pending_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Manual: a request not decided within this expires (default setting).")
    justification_pattern = models.CharField(
        max_length=256, blank=True, help_text="A regular expression the justification must contain (e.g. a "
                                              "ticket id: [A-Z]+-[0-9]+).")
    justification_hint = models.CharField(max_length=200, blank=True,
                                          help_text="Shown when the justification does not match.")
    message = models.CharField(max_length=300, blank=True, help_text="Deny: the reason shown to the requester.")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    form_token = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False,
                                  help_text="The New access rule form's one-time token: a second submit finds this "
                                            "rule (none for a rule made otherwise).")

    class Meta:
        ordering = ["scope", "effect", "name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_effect_display()})"

    @property
    def resource_id(self) -> str:
        """The scope, for the authorization API (a rule is managed where its scope is administered)."""
        return self.scope

    @property
    def pattern_problem(self) -> str | None:
        """Why the stored justification pattern is not run on justifications (saved before the form refused such
        patterns: invalid, or one that could search for a very long time), or ``None``."""
        from .patterns import pattern_problem

        return pattern_problem(self.justification_pattern) if self.justification_pattern else None


class Approval(models.Model):
    """One approver's decision on a request, at its level, with a comment."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approved"
        DENY = "deny", "Denied"

    request = models.ForeignKey(AccessRequest, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approver_name = models.CharField(max_length=255)
    level = models.PositiveSmallIntegerField(default=1)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["request", "approver"], name="acc_one_decision_each")]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.approver_name}"
