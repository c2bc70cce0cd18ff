"""Request JIT access from the command line, as ``Start-AzJitNetworkAccessPolicy`` does.

``--virtual-machine`` takes the cmdlet's ``-VirtualMachine`` array (``[{"id": ..., "ports": [{"number",
"endTimeUtc", "allowedSourceAddressPrefix"}]}]``) as JSON. The request goes through the same service,
validation (ports in the policy, window within each port's maximum, allowed source), authorization and audit
trail as the request page; the portal's worker opens it, or ``--wait`` opens it in this process.
"""
from __future__ import annotations

import hashlib
import uuid

from django.core.management.base import BaseCommand

from policies import jit_json, rules
from policies.access import services, validation
from policies.access.models import TRANSITIONAL, AccessRequest, AccessRequestPort, PortState
from policies.management.cli import (
    bad_input,
    read_json,
    refusals,
    refused,
    resolve_actor,
    run_until_done,
    wait_seconds,
    write_json,
)


def idempotency_key(actor, given: str | None) -> str:
    """The stored key: ``--idempotency-key`` scoped to the actor and hashed to fit its 64-character column (as the
    API does), so any length works and one user's key never meets another's; without one, a fresh key."""
    if not (given or "").strip():
        return f"cli-{uuid.uuid4().hex}"
    return f"cli:{actor.pk}:" + hashlib.sha256(given.strip().encode()).hexdigest()[:48]


def open_and_wait(request: AccessRequest, timeout: float) -> None:
    """Open each policy's ports of ``request`` in this process (a worker that got there first finishes it)."""
    for key in sorted(set(request.ports.values_list("policy_key", flat=True))):
        def step(key: str = key) -> float | None:
            outcome = services.request_open(request_id=request.pk, policy_key=key)
            moving = AccessRequestPort.objects.filter(request=request, policy_key=key, state__in=TRANSITIONAL)
            return (outcome.retry_after or 1.0) if moving.exists() else None

        run_until_done(step, timeout=timeout, what=f"Request #{request.pk}")


class Command(BaseCommand):
    help = ("Request JIT access like Start-AzJitNetworkAccessPolicy: --resource-id names the policy, "
            "--virtual-machine its -VirtualMachine array as JSON (inline, @file or - for stdin). Prints JSON.")
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("--resource-id", help="the JIT policy's ARM id (…/jitNetworkAccessPolicies/default)")
        parser.add_argument("--virtual-machine", dest="virtual_machine",
                            help='JSON [{"id": VM id, "ports": [{"number", "endTimeUtc", '
                                 '"allowedSourceAddressPrefix"}]}], @file, or - for standard input')
        parser.add_argument("--justification", default="", help="why you need access (required by the portal)")
        parser.add_argument("--start-time", help="startTimeUtc: a later start for a scheduled window")
        parser.add_argument("--duration", help="for ports without endTimeUtc: the window, e.g. PT1H")
        parser.add_argument("--actor", help="the portal user requesting (needs the requester role at the VMs)")
        parser.add_argument("--idempotency-key", help="a key of your own: running again with it returns the same "
                                                      "request instead of a second one")
        parser.add_argument("--wait", action="store_true", help="open in this process and wait for the result")
        parser.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits (default 300)")

    def handle(self, *args, **options):
        if not options["resource_id"]:
            raise bad_input("--resource-id is required: the JIT policy's ARM id.")
        wait_seconds(options["timeout"])
        actor = resolve_actor(options["actor"])
        with refusals():
            place = jit_json.parse_policy_id(options["resource_id"])
            default_duration = rules.parse_duration(options["duration"]) if options["duration"] else None
        given = read_json(options["virtual_machine"], option="--virtual-machine", stdin=options.get("stdin"))
        body = dict(given) if isinstance(given, dict) and "virtualMachines" in given else {"virtualMachines": given}
        if options["justification"]:
            body["justification"] = options["justification"]
        if options["start_time"]:
            body["startTimeUtc"] = options["start_time"]
        with refusals():
            parsed = jit_json.request_from_azure(body, user=actor, default_duration=default_duration)
        for selection in parsed.selections:
            vm = selection.vm
            if not place.holds(vm):
                held = f"it is in {vm.policy_id}" if vm.policy_name else "JIT is not enabled on it"
                raise bad_input(f"VM {vm.name} is not in JIT policy {place.id} ({held}).")
        with refusals():
            request, created = services.request_create(
                actor=actor, selections=parsed.selections, source_prefix=parsed.source_prefix,
                duration=parsed.duration, justification=parsed.justification,
                idempotency_key=idempotency_key(actor, options["idempotency_key"]),
                source_kind=validation.source_kind(parsed.source_prefix), start_at=parsed.start_at)
        if not created:
            self.stderr.write(f"Request #{request.pk} was made earlier with this idempotency key.")
        if options["wait"]:
            with refusals():
                open_and_wait(request, options["timeout"])
        request.refresh_from_db()
        write_json(self.stdout, jit_json.request_to_json(request))
        if request.state == PortState.FAILED:
            errors = sorted(set(request.ports.exclude(last_error="").values_list("last_error", flat=True)))
            raise refused(f"Request #{request.pk} failed: {'; '.join(errors) or 'see the request page'}")
        if request.state == PortState.PENDING:
            second = request.second_level_approvals
            self.stderr.write(f"Request #{request.pk} awaits approval ({request.approvals_required} needed"
                              f"{f', then {second} more' if second else ''}); the portal opens it once approved.")
        elif request.state == PortState.SCHEDULED:
            self.stderr.write(f"Request #{request.pk} is scheduled: the portal opens it at "
                              f"{jit_json.said(request.scheduled_start)}.")
        elif not options["wait"]:
            self.stderr.write(f"Request #{request.pk} is {request.get_state_display().lower()}; the portal's worker "
                              f"opens it (--wait to open it here).")
