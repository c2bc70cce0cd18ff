"""Registered subscriptions, the VM inventory mirrored from Azure, JIT policies, and the operations on them.

Azure is the source of truth for policies: ``JitPolicy``/``PolicyPort`` mirror what the last sync (or the
last write) read. ``PolicyChange`` is the intent row a user waits on; ``SyncRun`` the progress of one sync;
``DriftFinding`` what the sync found changed or opened outside the portal.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models

from jitportal.lib.arm import resource_name


class Subscription(models.Model):
    """An Azure subscription an admin registered, with how to reach it and what the last checks found."""

    class SyncStatus(models.TextChoices):
        NEVER = "never", "Never synced"
        RUNNING = "running", "Syncing"
        OK = "ok", "Synced"
        FAILED = "failed", "Failed"

    # ``accounts.authz.restrict``: a subscription sits at its own scope (RG-scoped grants do not cover it).
    AUTHZ_FIELDS = {"resource_id_field": "scope_id"}

    tenant_id = models.CharField(max_length=64)
    subscription_id = models.CharField(max_length=64, unique=True, help_text="The subscription's GUID.")
    scope_id = models.CharField(max_length=128, editable=False, help_text="/subscriptions/{id}, lower case.")
    display_name = models.CharField(max_length=255, blank=True)
    arm_endpoint = models.URLField(default="https://management.azure.com", help_text="Azure Resource Manager URL.")
    authority = models.URLField(default="https://login.microsoftonline.com", help_text="Entra ID authority URL.")
    ca_bundle = models.CharField(max_length=1024, blank=True,
                                 help_text="PEM file of the CA to trust for this endpoint (empty: the system's).")
    credential_ref = models.CharField(
        "credential reference", max_length=64,
        help_text="Name of a credential configured in the environment (PORTAL_CREDENTIALS); never a secret.",
    )
    enabled = models.BooleanField(default=True)
    defender_plan = models.CharField(max_length=32, blank=True,
                                     help_text="Defender for Servers tier/sub-plan as last read, e.g. Standard/P2.")
    defender_p2 = models.BooleanField(null=True, help_text="Whether Defender for Servers Plan 2 is on.")
    defender_checked_at = models.DateTimeField(null=True, blank=True)
    jit_disabled_subscription = models.BooleanField(default=False,
                                                    help_text="JIT is Off in the subscription's security policy.")
    jit_disabled_groups = models.JSONField(default=list, blank=True,
                                           help_text="Resource groups (lower case) with JIT Off in their policy.")
    resource_groups = models.JSONField(default=list, blank=True,
                                       help_text="Resource groups (lower case) with VMs, as the last sync saw them.")
    locations = models.JSONField(default=list, blank=True, help_text="Locations of its VMs at the last sync.")
    last_sync_status = models.CharField(max_length=16, choices=SyncStatus.choices, default=SyncStatus.NEVER)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["display_name", "subscription_id"]

    def __str__(self) -> str:
        return self.display_name or self.subscription_id

    def save(self, *args, **kwargs):
        self.subscription_id = self.subscription_id.lower()
        self.scope_id = f"/subscriptions/{self.subscription_id}"
        super().save(*args, **kwargs)

    @property
    def defender_missing(self) -> bool:
        return self.defender_p2 is False

    @property
    def defender_missing_message(self) -> str:
        """What to enable, when the last sync read Defender for Servers Plan 2 as off (JIT's prerequisite)."""
        return (f"JIT unavailable: enable Microsoft Defender for Servers Plan 2 on subscription "
                f"{self.display_name or self.subscription_id} ({self.subscription_id}).")


class VmState(models.TextChoices):
    CONFIGURED = "configured", "Configured"
    NOT_CONFIGURED = "not_configured", "Not configured"
    UNSUPPORTED = "unsupported", "Unsupported"


class UnsupportedReason(models.TextChoices):
    NONE = "", ""
    NO_NSG_OR_FIREWALL = "no_nsg_or_firewall", "Missing network security group (NSG) or Azure Firewall"
    CLASSIC_VM = "classic_vm", "Classic VM: JIT supports VMs deployed through Azure Resource Manager"
    JIT_DISABLED = "jit_disabled", "JIT is disabled in the security policy of the subscription or resource group"
    DEFENDER_MISSING = "defender_missing", "JIT unavailable: Defender for Servers Plan 2 is not enabled"
    NOT_IN_AZURE = "not_in_azure", "No longer in Azure: deleted, or moved to another resource group or subscription"


class ConnectionType(models.TextChoices):
    NSG = "nsg", "NSG"
    FIREWALL = "firewall", "Azure Firewall"
    NONE = "none", "None"


class VirtualMachine(models.Model):
    """One VM of a registered subscription, as the last sync saw it, with its JIT state."""

    AUTHZ_FIELDS = {"subscription_field": "subscription_key", "resource_group_field": "resource_group",
                    "resource_id_field": "resource_id"}

    resource_id = models.CharField(max_length=512, unique=True, help_text="ARM id, lower case.")
    arm_id = models.CharField(max_length=512, help_text="ARM id as Azure spells it.")
    name = models.CharField(max_length=128)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="vms")
    subscription_key = models.CharField(max_length=64, help_text="Subscription GUID, lower case (for scoping).")
    resource_group = models.CharField(max_length=128, help_text="Lower case (for scoping).")
    resource_group_name = models.CharField(max_length=128, help_text="As Azure spells it.")
    location = models.CharField(max_length=64)
    os_type = models.CharField(max_length=16, blank=True)
    is_classic = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=VmState.choices)
    unsupported_reason = models.CharField(max_length=32, choices=UnsupportedReason.choices, blank=True, default="")
    connection_type = models.CharField(max_length=16, choices=ConnectionType.choices, default=ConnectionType.NONE)
    nsg_ids = models.JSONField(default=list, blank=True)
    firewall_id = models.CharField(max_length=512, blank=True)
    firewall_public_ip = models.CharField(max_length=64, blank=True)
    public_ip = models.CharField(max_length=64, blank=True)
    private_ip = models.CharField(max_length=64, blank=True)
    policy_resource_group = models.CharField(max_length=128, blank=True)
    policy_location = models.CharField(max_length=64, blank=True)
    policy_name = models.CharField(max_length=128, blank=True)
    ports = models.JSONField(default=list, blank=True, help_text="The VM's JIT ports as Azure lists them.")
    portal_ports = models.JSONField(null=True, blank=True,
                                    help_text="The ports the portal last applied or accepted (drift baseline).")
    approved_requests_7d = models.PositiveIntegerField(default=0)
    last_access_at = models.DateTimeField(null=True, blank=True)
    last_user = models.CharField(max_length=255, blank=True)
    drift_count = models.PositiveIntegerField(default=0)
    synced_at = models.DateTimeField(null=True, blank=True)  # when a sync last changed the row (``read_at``)

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["subscription_key", "state", "name"], name="pol_vm_sub_state_name"),
            models.Index(fields=["state", "name"], name="pol_vm_state_name"),
            models.Index(fields=["subscription_key", "resource_group", "state"], name="pol_vm_sub_rg_state"),
            models.Index(fields=["state", "os_type"], name="pol_vm_state_os"),
            models.Index(fields=["state", "location"], name="pol_vm_state_location"),
            models.Index(fields=["state", "connection_type"], name="pol_vm_state_conn"),
            models.Index(fields=["subscription_key", "state", "last_access_at"], name="pol_vm_sub_state_access"),
            # The API's VM list pages by cursor in this order (``jitportal.lib.keyset``): each page seeks the index.
            models.Index(fields=["name", "id"], name="pol_vm_name_id"),
            # ... and for a reader scoped to one subscription or one resource group (``selectors._vm_scope_q``):
            # without these SQLite seeks the subscription's rows and sorts all those past the cursor on each page.
            models.Index(fields=["subscription_key", "name", "id"], name="pol_vm_sub_name_id"),
            models.Index(fields=["subscription_key", "resource_group", "name", "id"], name="pol_vm_sub_rg_name_id"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def jit_enabled(self) -> bool:
        """Whether JIT is configured on the VM, with a policy and ports to request (``requestable`` says whether Azure
        would open them)."""
        return self.state == VmState.CONFIGURED and bool(self.policy_name) and bool(self.ports)

    @property
    def requestable(self) -> bool:
        """Whether access to the VM can be requested: JIT configured, on a subscription whose Defender for Servers
        Plan 2 the last sync did not read as off (Azure opens no port there). Where Connect is offered."""
        return self.jit_enabled and not self.subscription.defender_missing

    @property
    def nsgs_named(self) -> list[tuple[str, str]]:
        """(name, ARM id) of each network security group the last sync found in front of the VM."""
        return [(resource_name(nsg), nsg) for nsg in self.nsg_ids or []]

    @property
    def firewall_name(self) -> str:
        return resource_name(self.firewall_id)

    @property
    def policy_id(self) -> str:
        if not self.policy_name:
            return ""
        return (f"/subscriptions/{self.subscription_key}/resourceGroups/{self.policy_resource_group}/providers/"
                f"Microsoft.Security/locations/{self.policy_location}/jitNetworkAccessPolicies/{self.policy_name}")

    @property
    def read_at(self):
        """When a sync last read this VM from Azure: the subscription's last stored sync while Azure lists it (a
        sync rewrites only the rows that changed, ``synced_at`` being when it last did), else ``synced_at``."""
        if self.unsupported_reason == UnsupportedReason.NOT_IN_AZURE:
            return self.synced_at
        return self.subscription.defender_checked_at or self.synced_at

    @property
    def unsupported_message(self) -> str:
        if self.unsupported_reason == UnsupportedReason.DEFENDER_MISSING:
            return self.subscription.defender_missing_message
        return self.get_unsupported_reason_display()


class JitPolicy(models.Model):
    """A JIT policy (one per resource group and location) as Azure returned it."""

    AUTHZ_FIELDS = {"subscription_field": "subscription_key", "resource_group_field": "resource_group",
                    "resource_id_field": "resource_id"}

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="policies")
    subscription_key = models.CharField(max_length=64)
    resource_id = models.CharField(max_length=512, unique=True, help_text="ARM id, lower case.")
    resource_group = models.CharField(max_length=128, help_text="Lower case.")
    resource_group_name = models.CharField(max_length=128)
    location = models.CharField(max_length=64)
    name = models.CharField(max_length=128)
    provisioning_state = models.CharField(max_length=32, blank=True)
    requests = models.JSONField(default=list, blank=True, help_text="The policy's requests as Azure lists them.")
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "JIT policy"
        verbose_name_plural = "JIT policies"
        ordering = ["resource_id"]

    def __str__(self) -> str:
        return f"{self.resource_group_name}/{self.location}/{self.name}"


class PolicyPort(models.Model):
    """One port rule of one VM in a JIT policy (mirror of Azure)."""

    policy = models.ForeignKey(JitPolicy, on_delete=models.CASCADE, related_name="ports")
    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="policy_ports")
    number = models.PositiveIntegerField()
    protocol = models.CharField(max_length=8)
    allowed_source_prefixes = models.JSONField(default=list)
    max_request_duration = models.CharField(max_length=16)

    class Meta:
        ordering = ["vm_id", "number"]
        constraints = [models.UniqueConstraint(fields=["vm", "number"], name="pol_port_unique_per_vm")]

    def __str__(self) -> str:
        return f"{self.number}/{self.protocol}"


class HubTopology(models.Model):
    """The secured virtual hubs of every subscription one identity can read (tenant, credential reference, ARM
    endpoint), as a sync last read them: the syncs of that identity's subscriptions share it for
    ``INVENTORY_REMOTE_HUBS_MAX_AGE_SECONDS`` instead of each listing every other subscription's hubs. One sync at
    a time reads them again (``reader``); the others wait for its reading (``policies.hub_topology``)."""

    tenant_id = models.CharField(max_length=64, help_text="Lower case.")
    credential_ref = models.CharField(max_length=64)
    arm_endpoint = models.CharField(max_length=200, help_text="Lower case, without a trailing slash.")
    hubs = models.JSONField(default=dict, help_text='Subscription id → its secured hubs, each {"hub", "firewall", '
                                                   '"public_ip", "vnets"} (lower case ids); [] when none.')
    read_at = models.DateTimeField(null=True, help_text="When the reading began; empty before the first one.")
    reader = models.CharField(max_length=64, blank=True,
                              help_text="The sync reading them again now (a claim token), if any.")
    reader_seen_at = models.DateTimeField(null=True, blank=True,
                                          help_text="When that sync last showed it was still reading.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant_id", "credential_ref", "arm_endpoint"],
                                               name="pol_hub_topology_unique")]

    def __str__(self) -> str:
        return f"hubs seen by {self.credential_ref} in {self.tenant_id}"


class PolicyLock(models.Model):
    """One row per policy (resource group + location + name): writes to the policy lock it first."""

    key = models.CharField(max_length=512, unique=True, help_text="The policy's ARM id, lower case.")
    holder = models.CharField(max_length=64, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.key


class PolicyChange(models.Model):
    """A change to one JIT policy a user asked for: stored first, applied by a task, its outcome kept."""

    AUTHZ_FIELDS = {"subscription_field": "subscription_key", "resource_group_field": "resource_group",
                    "resource_id_field": "policy_id"}

    class Kind(models.TextChoices):
        ENABLE = "enable", "Enable JIT"
        SAVE = "save", "Edit JIT"
        REMOVE = "remove", "Remove JIT"

    class State(models.TextChoices):
        QUEUED = "queued", "Pending"
        RUNNING = "running", "Applying"
        APPLIED = "applied", "Applied"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="changes")
    subscription_key = models.CharField(max_length=64)
    resource_group = models.CharField(max_length=128, help_text="Lower case.")
    resource_group_name = models.CharField(max_length=128)
    location = models.CharField(max_length=64)
    policy_name = models.CharField(max_length=128, default="default")
    policy_id = models.CharField(max_length=512, help_text="ARM id of the policy, lower case.")
    desired = models.JSONField(help_text="VM ARM id → its ports (Azure's shape), or null to remove JIT from it.")
    vms = models.ManyToManyField(VirtualMachine, related_name="changes")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    azure_request_id = models.CharField(max_length=128, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    client_ip = models.GenericIPAddressField(null=True, blank=True,
                                             help_text="Address the change was asked from (its audit rows carry it).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.resource_group_name}/{self.location} ({self.get_state_display()})"

    @property
    def done(self) -> bool:
        return self.state in (self.State.APPLIED, self.State.FAILED)


class SyncRun(models.Model):
    """One inventory sync of one subscription, with its progress (pages and calls) for the page to show."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"  # not run: its subscription was disabled while it waited

    STORING = "storing"  # the phase once Azure is read: the chunks are stored, each committed on its own

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="sync_runs")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    phase = models.CharField(max_length=64, blank=True)
    pages_read = models.PositiveIntegerField(default=0)
    calls_made = models.PositiveIntegerField(default=0)
    vms_seen = models.PositiveIntegerField(default=0)
    findings = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"sync of {self.subscription} ({self.get_state_display()})"

    @property
    def done(self) -> bool:
        return self.state in (self.State.SUCCEEDED, self.State.FAILED, self.State.CANCELLED)

    @property
    def partly_stored(self) -> bool:
        """Whether the run failed while storing (phase ``STORING``): the chunks it committed stay, so the inventory may
        be partly refreshed until the next sync. One that failed reading Azure stored nothing."""
        return self.state == self.State.FAILED and self.phase == self.STORING


class DriftFinding(models.Model):
    """Something the sync found changed or opened outside the portal, on one VM."""

    class Kind(models.TextChoices):
        DENY_RULE_MISSING = "deny_rule_missing", "JIT deny rule removed by hand"
        DENY_RULE_EDITED = "deny_rule_edited", "JIT deny rule edited by hand"
        ALLOW_WITHOUT_REQUEST = "allow_without_request", "Allow rule open with no matching request"
        POLICY_CHANGED = "policy_changed", "Policy changed outside the portal"

    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="drift")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    key = models.CharField(max_length=512, help_text="What the finding is about (a rule, a port) within the VM.")
    detail = models.TextField()
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [models.UniqueConstraint(fields=["vm", "kind", "key"], name="pol_drift_unique")]
        indexes = [models.Index(fields=["vm", "resolved_at"], name="pol_drift_vm_open")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.detail}"


from policies.access.models import *  # noqa: E402, F403
