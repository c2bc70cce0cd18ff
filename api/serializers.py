"""HTTP shapes of the API (Azure JIT resource names: ``ports``, ``number``, ``protocol``,
``allowedSourceAddressPrefix(es)``, ``maxRequestAccessDuration``, ``endTimeUtc``, ``virtualMachines``).

Serializers check the shape (types, required keys, ranges); the domain rules (which ports a VM's policy has,
allowed sources, maximum times) stay in the services, whose ``ValidationError`` becomes a 400 too.
"""
from __future__ import annotations

from collections.abc import Mapping

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jitportal.lib.numbers import AsciiIntegerSerializerField
from policies import rules

MAX_LIST = 100
MAX_PREFIX = 64  # a source prefix as stored (``AccessRequest.source_prefix``) and as the schema gives it


@extend_schema_field({"oneOf": [{"type": "string", "maxLength": MAX_PREFIX},
                                {"type": "array", "items": {"type": "string", "maxLength": MAX_PREFIX},
                                 "maxItems": MAX_LIST}]})
class StringOrListField(serializers.Field):
    """A prefix as Azure writes it: one string, or a list of strings (``["*"]``, ``["1.2.3.4"]``), each at most
    ``MAX_PREFIX`` characters, as the schema says (a longer one is refused here, before any domain rule reads it)."""

    default_error_messages = {
        "invalid": "Give a string or a list of strings.",
        "max_length": "A prefix is at most {max_length} characters; this one has {length}.",
    }

    max_items = MAX_LIST

    def too_many(self, count: int) -> str:
        return f"Give at most {self.max_items:,} prefixes; this list has {count:,}."

    def to_internal_value(self, data) -> list[str]:
        if isinstance(data, list) and len(data) > self.max_items:
            raise serializers.ValidationError(self.too_many(len(data)))
        if isinstance(data, str):
            values = [data]
        elif isinstance(data, list) and all(isinstance(v, str) for v in data):
            values = list(data)
        else:
            self.fail("invalid")
        for value in values:
            if len(value) > MAX_PREFIX:
                self.fail("max_length", max_length=MAX_PREFIX, length=len(value))
        return values

    def to_representation(self, value):
        return value


@extend_schema_field({"oneOf": [{"type": "string", "maxLength": MAX_PREFIX},
                                {"type": "array", "items": {"type": "string", "maxLength": MAX_PREFIX},
                                 "maxItems": rules.MAX_SOURCES}]})
class PortSourcesField(StringOrListField):
    """A JIT port's allowed sources: as many as the page takes (``rules.MAX_SOURCES``), told alike past them."""

    max_items = rules.MAX_SOURCES

    def too_many(self, count: int) -> str:
        return rules.too_many_sources(count)


class PortSourceListField(serializers.ListField):
    """``allowedSourceAddressPrefixes``: a list of at most ``rules.MAX_SOURCES`` prefixes, told as on the page."""

    def __init__(self, **kwargs) -> None:
        super().__init__(child=serializers.CharField(max_length=MAX_PREFIX), max_length=rules.MAX_SOURCES, **kwargs)

    def to_internal_value(self, data) -> list[str]:
        if isinstance(data, list) and len(data) > rules.MAX_SOURCES:
            raise serializers.ValidationError(rules.too_many_sources(len(data)))
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """Text that must arrive as a JSON string: DRF's ``CharField`` would store ``5`` as ``"5"``."""

    default_error_messages = {"invalid": "Give text (a JSON string), not a number, list or object."}

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ClosedSerializer(serializers.Serializer):
    """A body object whose fields are all known: a misspelt one (``startTimeUTC``) is a 400 naming it, not a field
    silently ignored (DRF's way), which would do something other than the caller asked."""

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, Mapping) else []
        if not unknown:
            return super().to_internal_value(data)
        errors = {}
        try:
            super().to_internal_value(data)
        except serializers.ValidationError as exc:  # the known fields' problems too, in one answer
            if not isinstance(exc.detail, dict):
                raise
            errors = dict(exc.detail)
        expected = (f"expected {', '.join(sorted(self.fields))}" if self.fields
                    else "this body has no fields: send {} or no body")
        errors.update({str(name): [f"unknown field ({expected})."] for name in unknown})
        raise serializers.ValidationError(errors)


# --- errors ----------------------------------------------------------------------------------------------------
class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in words.")
    errors = serializers.ListField(child=serializers.CharField(), help_text="Each problem on its own.")


# --- policy ports ----------------------------------------------------------------------------------------------
class PolicyPortInSerializer(serializers.Serializer):
    """One JIT port as ``Set-AzJitNetworkAccessPolicy`` writes it."""

    number = AsciiIntegerSerializerField(min_value=1, max_value=65535)
    protocol = serializers.CharField(required=False, max_length=8, help_text="TCP, UDP or * (any); default *.")
    allowedSourceAddressPrefix = PortSourcesField(required=False)
    allowedSourceAddressPrefixes = PortSourceListField(required=False)
    maxRequestAccessDuration = serializers.CharField(
        required=False, max_length=32, help_text="ISO 8601, PT5M to PT24H; default PT3H.")


class PolicyPortSerializer(serializers.Serializer):
    """One JIT port as Azure lists it (one source as ``allowedSourceAddressPrefix``, several as ``…es``)."""

    number = serializers.IntegerField()
    protocol = serializers.CharField()
    allowedSourceAddressPrefix = serializers.CharField(required=False)
    allowedSourceAddressPrefixes = serializers.ListField(child=serializers.CharField(), required=False)
    maxRequestAccessDuration = serializers.CharField()


ECHOED = "Read-only: the GET answer's, accepted so it may be sent back, and ignored."


class PolicyPutSerializer(ClosedSerializer):
    """A VM's JIT ports to set. The GET answer may be sent back as it is: its read-only fields are ignored; any
    other field is a 400 naming it."""

    ports = PolicyPortInSerializer(many=True, allow_empty=False, max_length=MAX_LIST)
    id = serializers.CharField(required=False, help_text=ECHOED)
    state = serializers.CharField(required=False, help_text=ECHOED)
    policyId = serializers.CharField(required=False, allow_blank=True, help_text=ECHOED)
    pendingChanges = serializers.ListField(child=serializers.IntegerField(), required=False, help_text=ECHOED)


class VmJitSerializer(serializers.Serializer):
    """A VM's JIT entry, as in a policy's ``virtualMachines``: its ARM id and ports."""

    id = serializers.CharField(help_text="The VM's ARM id.")
    ports = PolicyPortSerializer(many=True)
    state = serializers.CharField(help_text="configured, not_configured or unsupported.")
    policyId = serializers.CharField(allow_blank=True, help_text="The JIT policy's ARM id, empty if none.")
    pendingChanges = serializers.ListField(child=serializers.IntegerField(),
                                           help_text="Ids of policy changes not applied yet.")


class PolicyChangeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    state = serializers.CharField(help_text="queued, running, applied or failed.")
    policyId = serializers.CharField()
    virtualMachines = serializers.ListField(child=serializers.CharField())
    desired = serializers.DictField(help_text="VM ARM id → its ports (Azure's shape), or null to remove JIT.")
    lastError = serializers.CharField(allow_blank=True)
    withheld = serializers.IntegerField(help_text="How many VMs of the change are outside your scope: left out of "
                                                  "virtualMachines and desired, and of lastError.")
    createdAt = serializers.DateTimeField()
    finishedAt = serializers.DateTimeField(allow_null=True)
    url = serializers.CharField()


class PolicyChangeAcceptedSerializer(serializers.Serializer):
    changes = PolicyChangeSerializer(many=True)
    statusUrl = serializers.CharField(help_text="Poll this URL until the change is applied or failed.")


def change_json(change, request=None) -> dict:
    """A policy change as its viewer may see it (``policies.selectors.changes_as_seen``)."""
    url = reverse("api:policy_change", kwargs={"pk": change.pk})
    return {"id": change.pk, "kind": change.kind, "state": change.state, "policyId": change.policy_id,
            "virtualMachines": sorted(change.shown_desired), "desired": change.shown_desired,
            "lastError": change.shown_error, "withheld": change.withheld,
            "createdAt": change.created_at, "finishedAt": change.finished_at,
            "url": request.build_absolute_uri(url) if request else url}


# --- VMs -------------------------------------------------------------------------------------------------------
class VmSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The portal's id (use it in URLs).")
    armId = serializers.CharField(help_text="The VM's ARM id as Azure spells it.")
    name = serializers.CharField()
    subscriptionId = serializers.CharField()
    resourceGroup = serializers.CharField()
    location = serializers.CharField()
    osType = serializers.CharField(allow_blank=True)
    state = serializers.CharField(help_text="configured, not_configured or unsupported.")
    unsupportedReason = serializers.CharField(allow_blank=True)
    connectionType = serializers.CharField(allow_blank=True, help_text="firewall, nsg or none (JIT acts there).")
    publicIp = serializers.CharField(allow_blank=True)
    privateIp = serializers.CharField(allow_blank=True)
    firewallId = serializers.CharField(allow_blank=True, help_text="The Azure Firewall guarding the VM, if any.")
    firewallPublicIp = serializers.CharField(allow_blank=True, help_text="Connect here (DNAT) behind a firewall.")
    policyId = serializers.CharField(allow_blank=True)
    ports = PolicyPortSerializer(many=True)
    approvedRequests7d = serializers.IntegerField(help_text="Approved JIT requests in the last seven days.")
    lastAccessAt = serializers.DateTimeField(allow_null=True)
    lastUser = serializers.CharField(allow_blank=True)
    url = serializers.CharField()


def vm_json(vm, request=None) -> dict:
    url = reverse("api:vm", kwargs={"pk": vm.pk})
    return {"id": vm.pk, "armId": vm.arm_id, "name": vm.name, "subscriptionId": vm.subscription_key,
            "resourceGroup": vm.resource_group_name, "location": vm.location, "osType": vm.os_type,
            "state": vm.state, "unsupportedReason": vm.unsupported_reason, "connectionType": vm.connection_type,
            "publicIp": vm.public_ip, "privateIp": vm.private_ip, "firewallId": vm.firewall_id,
            "firewallPublicIp": vm.firewall_public_ip, "policyId": vm.policy_id,
            "ports": [rules.PortRule.from_azure(p).to_azure() for p in vm.ports or []],
            "approvedRequests7d": vm.approved_requests_7d, "lastAccessAt": vm.last_access_at,
            "lastUser": vm.last_user,
            "url": request.build_absolute_uri(url) if request else url}


# --- requests --------------------------------------------------------------------------------------------------
SOURCE_IN = ("Where access is allowed from (every port of a request gives the same one): * (any), an IP address "
             "(stored as /32 or /128) or a CIDR range. A range with host bits set is stored as its network "
             "(203.0.113.7/24 opens 203.0.113.0/24); the answer's allowedSourceAddressPrefix gives what was stored.")
SOURCE_OUT = "The source every port opens for, as stored: *, an address as /32 or /128, or a range as its network."


class RequestPortInSerializer(serializers.Serializer):
    """One port of a ``Start-AzJitNetworkAccessPolicy`` body."""

    number = AsciiIntegerSerializerField(min_value=1, max_value=65535)
    endTimeUtc = serializers.DateTimeField(required=False, help_text="When access ends (ISO 8601, UTC).")
    allowedSourceAddressPrefix = StringOrListField(required=False, help_text=SOURCE_IN)
    allowedSourceAddressPrefixes = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=MAX_LIST, help_text=SOURCE_IN)


class RequestVmInSerializer(ClosedSerializer):
    id = serializers.CharField(max_length=512, help_text="The VM's ARM id.")
    ports = RequestPortInSerializer(many=True, allow_empty=False, max_length=MAX_LIST)


class RequestCreateSerializer(ClosedSerializer):
    """A ``Start-AzJitNetworkAccessPolicy`` body: VMs with their ports, and why."""

    virtualMachines = RequestVmInSerializer(many=True, allow_empty=False, max_length=MAX_LIST)
    justification = serializers.CharField(max_length=500)
    startTimeUtc = serializers.DateTimeField(required=False, allow_null=True,
                                             help_text="A scheduled window's start (omit: now).")


class ExtendSerializer(ClosedSerializer):
    duration = serializers.CharField(required=False, max_length=32,
                                     help_text="ISO 8601, e.g. PT1H (give this or endTimeUtc, not both).")
    endTimeUtc = serializers.DateTimeField(required=False, help_text="When access ends (give this or duration).")
    justification = StrictCharField(required=False, allow_blank=True, max_length=500)


class EmptyBodySerializer(ClosedSerializer):
    """The body of a write that takes no fields (close a request, remove a VM's JIT): none, or ``{}``. Anything else
    is refused (a field: 400, not JSON: 415) rather than ignored, as every other write body is."""


EMPTY_BODY = {"type": "object", "additionalProperties": False, "maxProperties": 0,
              "description": "No fields: send no body, or {}. A field is a 400; a body that is not JSON, a 415."}


class DecisionSerializer(ClosedSerializer):
    comment = StrictCharField(required=False, allow_blank=True, max_length=1000, default="")


class ConnectionSerializer(serializers.Serializer):
    host = serializers.CharField()
    port = serializers.IntegerField()
    via = serializers.CharField(allow_blank=True, allow_null=True, required=False)
    endpoint = serializers.CharField()


PORT_END = ("When this port's access ends, once known: Azure's end once it opened; the planned end of a scheduled "
            "window or of a request opening without approval. Null while the window waits for approvals (it starts "
            "when the last approval lands and the port opens), once approved until the port opens, and for a port that "
            "never opened (denied, failed, not approved in time, cancelled): its length is `duration`.")
REQUEST_END = ("When the request's access ends (its latest port's), once known; null while no port's end is "
               "(see the ports' endTimeUtc): the window's length is then `duration`.")
PORT_DURATION = "The window asked for this port, ISO 8601 (PT1H30M): how long it stays open from when it opens."
REQUEST_DURATION = ("The window asked for, ISO 8601 (its longest port's): how long access lasts from when it opens, "
                    "which for a request awaiting approval is when the last approval lands.")


class RequestPortSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    protocol = serializers.CharField()
    allowedSourceAddressPrefix = serializers.CharField()
    endTimeUtc = serializers.DateTimeField(allow_null=True, help_text=PORT_END)
    duration = serializers.CharField(help_text=PORT_DURATION)
    status = serializers.CharField(help_text="The portal's state of this port (queued, open, expired…).")
    azureStatus = serializers.CharField(allow_null=True, help_text="Initiated or Revoked, as Azure says.")
    statusReason = serializers.CharField(allow_null=True)
    mappedPort = serializers.IntegerField(allow_null=True, help_text=(
        "Azure Firewall DNAT port; shown to the requester only (null for anyone else reading the request)."))
    error = serializers.CharField(allow_null=True)
    connection = ConnectionSerializer(required=False, allow_null=True, help_text=(
        "How to connect, while the port is open (absent otherwise). Shown to the requester only: null on every "
        "port for anyone else reading the request (an approver, a policy admin, another requester at its VMs)."))


class RequestVmSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The VM's ARM id.")
    name = serializers.CharField()
    ports = RequestPortSerializer(many=True)
    address = serializers.CharField(required=False, help_text="Where to connect, while a port is open: to the "
                                                              "requester only.")
    addressKind = serializers.CharField(required=False)


class DecisionRecordSerializer(serializers.Serializer):
    approver = serializers.CharField()
    level = serializers.IntegerField()
    decision = serializers.CharField(help_text="approve or deny.")
    comment = serializers.CharField(allow_blank=True)
    at = serializers.DateTimeField()


class RequestSerializer(serializers.Serializer):
    """An access request with its VMs and ports (``policies.jit_json.request_to_json``) and its URL."""

    id = serializers.IntegerField()
    kind = serializers.CharField()
    state = serializers.CharField()
    requester = serializers.CharField()
    justification = serializers.CharField(allow_blank=True)
    correlationId = serializers.CharField()
    allowedSourceAddressPrefix = serializers.CharField(help_text=SOURCE_OUT)
    createdAt = serializers.DateTimeField(allow_null=True)
    startTimeUtc = serializers.DateTimeField(allow_null=True, help_text=(
        "A scheduled window's start, else when its first port opened; null before that."))
    endTimeUtc = serializers.DateTimeField(allow_null=True, help_text=REQUEST_END)
    duration = serializers.CharField(help_text=REQUEST_DURATION)
    closedAt = serializers.DateTimeField(allow_null=True)
    extends = serializers.IntegerField(required=False)
    approvalState = serializers.CharField(required=False)
    approvalsRequired = serializers.IntegerField(required=False)
    secondLevelApprovals = serializers.IntegerField(required=False)
    approvalExpiresAt = serializers.DateTimeField(required=False, allow_null=True)
    approvedAt = serializers.DateTimeField(required=False, allow_null=True)
    ruleName = serializers.CharField(required=False, allow_blank=True)
    approvals = DecisionRecordSerializer(many=True, help_text="Each approver's decision, oldest first.")
    virtualMachines = RequestVmSerializer(many=True, help_text=(
        "Its VMs; someone else's request lists only those you may read (withheld counts the others)."))
    withheld = serializers.IntegerField(help_text=(
        "How many VMs of the request are outside your scope: left out of virtualMachines, and any mention of them in "
        "the justification, an error or a comment reads [withheld: outside your scope]. 0 for your own requests."))
    url = serializers.CharField()


# --- audit -----------------------------------------------------------------------------------------------------
class AuditEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField(help_text="azure (Activity Log) or portal (the portal's own trail).")
    occurredAt = serializers.DateTimeField()
    operation = serializers.CharField()
    status = serializers.CharField(allow_blank=True)
    caller = serializers.CharField(allow_blank=True, help_text="azure: the caller as the Activity Log has it (lower "
                                                                 "case); portal: the user name.")
    callerName = serializers.CharField(
        allow_blank=True, help_text="The caller as the audit page and the CSV's Caller name column show it: the "
                                    "portal's own identity (the client id of a credential in PORTAL_CREDENTIALS) "
                                    "reads 'jitportal (service principal 0d3b6a9e…)' or 'jitportal (managed identity "
                                    "…)'; anyone else as in caller.")
    subscriptionId = serializers.CharField(allow_blank=True)
    subscriptionName = serializers.CharField(
        allow_null=True, help_text="The subscription's display name as registered in the portal; null when the portal "
                                   "knows none (not registered, removed since, or registered without a name).")
    resourceGroup = serializers.CharField(allow_blank=True)
    resourceId = serializers.CharField(allow_blank=True)
    target = serializers.CharField(allow_blank=True)
    correlationId = serializers.CharField(allow_blank=True)
    details = serializers.JSONField(help_text="Azure's properties, or the portal event's before/after.")
    withheld = serializers.IntegerField(help_text="How many VMs outside your audit scope the event names: their "
                                                  "entries are left out of its lists, and their ids and names in "
                                                  "text read [withheld: outside your audit scope].")


class AuditPageSerializer(serializers.Serializer):
    next = serializers.CharField(allow_null=True, help_text="URL of the next (older) page.")
    previous = serializers.CharField(allow_null=True, help_text="URL of the previous (newer) page.")
    results = AuditEventSerializer(many=True)


# --- tokens ----------------------------------------------------------------------------------------------------
class TokenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    status = serializers.CharField()
    createdAt = serializers.DateTimeField()
    lastUsedAt = serializers.DateTimeField(allow_null=True)
    expiresAt = serializers.DateTimeField(allow_null=True)


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    displayName = serializers.CharField(allow_blank=True)
    authentication = serializers.CharField(help_text="api_token, entra or session.")
    roles = serializers.ListField(child=serializers.DictField(), help_text="Portal roles and their scopes.")




class VmPageSerializer(serializers.Serializer):
    next = serializers.CharField(allow_null=True, help_text="URL of the next page (names later in the order).")
    previous = serializers.CharField(allow_null=True, help_text="URL of the previous page (names earlier).")
    results = VmSerializer(many=True)


class RequestPageSerializer(serializers.Serializer):
    next = serializers.CharField(allow_null=True, help_text="URL of the next (older) page.")
    previous = serializers.CharField(allow_null=True, help_text="URL of the previous (newer) page.")
    results = RequestSerializer(many=True)


class ProgressSerializer(serializers.Serializer):
    first = serializers.IntegerField(help_text="Approvals given at the first level.")
    first_needed = serializers.IntegerField()
    second = serializers.IntegerField(help_text="Approvals given at the second level.")
    second_needed = serializers.IntegerField(help_text="0: no second level.")


class ApprovalSerializer(RequestSerializer):
    progress = ProgressSerializer()


class ApprovalPageSerializer(serializers.Serializer):
    next = serializers.CharField(allow_null=True, help_text="URL of the next page (expiring later).")
    previous = serializers.CharField(allow_null=True, help_text="URL of the previous page (expiring sooner).")
    results = ApprovalSerializer(many=True)
