"""The portal's own append-only audit trail, chained by hash so tampering is detectable."""
from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnlyQuerySet(models.QuerySet):
    """A queryset that refuses bulk updates and deletes: audit rows are never changed."""

    def update(self, **kwargs):
        raise PermissionError("audit events are append-only")

    def delete(self):
        raise PermissionError("audit events are append-only")


class AuditEvent(models.Model):
    """Who did what to which target, from where and when, with the state before and after."""

    # ``accounts.authz.restrict`` reads an event's place from these fields.
    AUTHZ_FIELDS = {"subscription_field": "subscription_id", "resource_group_field": "resource_group",
                    "resource_id_field": "resource_id"}

    occurred_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=512, blank=True)
    target_label = models.CharField(max_length=512, blank=True)
    subscription_id = models.CharField(max_length=64, blank=True, db_index=True)
    resource_group = models.CharField(max_length=128, blank=True)
    resource_id = models.CharField(max_length=512, blank=True, db_index=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True, db_index=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["action", "occurred_at"]), models.Index(fields=["actor", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target_label}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit events are append-only")


class AuditChainHead(models.Model):
    """One row holding the newest hash: locking it serializes appends across processes and hosts."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_hash = models.CharField(max_length=64)
    count = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"audit chain head ({self.count} events)"


class ActivityLogEvent(models.Model):
    """A copy of one Azure Activity Log entry, keyed by Azure's event id and shaped for search.

    Identifiers used for filtering (subscription, resource group, resource id, caller, the VMs the event
    concerns) are stored lower-cased so that equality and ``LIKE`` use plain indexes. ``vm_ids`` lists the
    VMs an event concerns, space-separated with a space at both ends: the resource itself when it is a VM,
    the VMs named in a JIT policy event's properties, and for the NSG rules a JIT call wrote, the VM the JIT rule's
    name names among the VMs of the call they share a correlation id with (all of them when it names none).
    ``search_text`` is what free-text search looks in.
    """

    # ``accounts.authz.restrict`` reads an event's place from these fields (the search itself also lets a
    # VM-scoped grant see the JIT policy events that name the VM; see ``audit.selectors``).
    AUTHZ_FIELDS = {"subscription_field": "subscription_id", "resource_group_field": "resource_group",
                    "resource_id_field": "resource_id"}

    event_data_id = models.CharField(max_length=64, unique=True)
    correlation_id = models.CharField(max_length=64, blank=True, db_index=True)
    occurred_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    subscription_id = models.CharField(max_length=64)
    resource_group = models.CharField(max_length=128, blank=True)
    resource_id = models.CharField(max_length=1024, blank=True, db_index=True)
    resource_provider = models.CharField(max_length=128, blank=True)
    resource_type = models.CharField(max_length=256, blank=True)
    caller = models.CharField(max_length=256, blank=True)
    operation_name = models.CharField(max_length=256)
    status = models.CharField(max_length=64, blank=True)
    sub_status = models.CharField(max_length=128, blank=True)
    level = models.CharField(max_length=32, blank=True)
    category = models.CharField(max_length=64, blank=True)
    vm_ids = models.TextField(blank=True, default="")
    search_text = models.TextField(blank=True, default="")
    properties = models.JSONField(default=dict, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    ingested_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["occurred_at", "id"], name="audit_activity_time"),
            models.Index(fields=["subscription_id", "occurred_at"], name="audit_activity_sub_time"),
            models.Index(fields=["resource_group", "occurred_at"], name="audit_activity_rg_time"),
            models.Index(fields=["caller", "occurred_at"], name="audit_activity_caller_time"),
            models.Index(fields=["operation_name", "occurred_at"], name="audit_activity_op_time"),
            models.Index(fields=["status", "occurred_at"], name="audit_activity_status_time"),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.caller} {self.operation_name} {self.status}"

    @property
    def vm_id_list(self) -> list[str]:
        return self.vm_ids.split()


class ActivityLogEventVm(models.Model):
    """Which VM an Activity Log copy concerns (one row per VM and event): the VM filter's index.

    Keyed by Azure's event id (not a foreign key) so ingestion writes it in the same bulk insert pass.
    """

    event_data_id = models.CharField(max_length=64)
    vm_id = models.CharField(max_length=512, help_text="Lower-cased VM resource id.")
    occurred_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["vm_id", "event_data_id"], name="audit_activity_vm_unique")]
        indexes = [models.Index(fields=["vm_id", "occurred_at"], name="audit_activity_vm_time"),
                   models.Index(fields=["occurred_at"], name="audit_activity_vm_age")]

    def __str__(self) -> str:
        return f"{self.vm_id} in {self.event_data_id}"


class IngestionState(models.Model):
    """Where Activity Log ingestion of one subscription stands; claimed by one run at a time."""

    subscription_id = models.CharField(max_length=64, unique=True)
    watermark = models.DateTimeField(null=True, blank=True, help_text="Events up to here have been read.")
    backfill_from = models.DateTimeField(null=True, blank=True)
    window_start = models.DateTimeField(null=True, blank=True, help_text="The window being read, if any.")
    window_end = models.DateTimeField(null=True, blank=True)
    next_link = models.TextField(blank=True, default="", help_text="The next page of the window being read.")
    running_since = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    events_seen = models.BigIntegerField(default=0)
    events_added = models.BigIntegerField(default=0)
    events_skipped = models.BigIntegerField(
        default=0, help_text="Events left out as malformed (an id too long to store, or no time), each time read.")
    last_skipped = models.TextField(blank=True, default="", help_text="Why the last event left out was.")
    last_skipped_at = models.DateTimeField(null=True, blank=True)
    pages_read = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["subscription_id"]

    def __str__(self) -> str:
        return f"ingestion of {self.subscription_id}"

    @property
    def progress(self) -> float | None:
        """Share of the first 90-day backfill read so far (0..1), or None before the first run."""
        if self.backfill_from is None or self.watermark is None:
            return None if self.backfill_from is None else 0.0
        total = (timezone.now() - self.backfill_from).total_seconds()
        done = (self.watermark - self.backfill_from).total_seconds()
        return 1.0 if total <= 0 else max(0.0, min(1.0, done / total))
