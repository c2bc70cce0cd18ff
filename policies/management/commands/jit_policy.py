"""Set, show or remove JIT on VMs from the command line, with ``Set-AzJitNetworkAccessPolicy``'s options.

``set`` takes the cmdlet's ``-VirtualMachine`` array (``[{"id": ..., "ports": [...]}]``) as JSON and goes
through the same services, authorization and audit trail as the pages: each VM without JIT is enabled with
the given ports, each VM with JIT gets its ports replaced. VMs of the policy that are not listed keep their
settings (unlike the cmdlet, which writes the whole list); ``remove`` takes VMs out. Changes are queued for
the portal's worker; ``--wait`` applies them in this process and prints the policy as Azure shapes it.
"""
from __future__ import annotations

from django.core.management.base import BaseCommand

from accounts import authz
from accounts.roles import JIT_POLICY_READ, VM_READ
from policies import jit_json, selectors, services
from policies.management.cli import (
    bad_input,
    read_json,
    refusals,
    refused,
    resolve_actor,
    run_until_done,
    stored,
    wait_seconds,
    write_json,
)
from policies.models import JitPolicy, PolicyChange, VirtualMachine, VmState

ACTIONS = ("set", "show", "remove")


def change_to_json(change: PolicyChange) -> dict:
    """A queued or applied policy change: what it does, where, and how it went."""
    place = jit_json.PolicyPlace(change.subscription_key, change.resource_group_name, change.location.lower(),
                                 change.policy_name)
    return {"id": change.pk, "kind": change.kind, "state": change.state, "policyId": place.id,
            "virtualMachines": sorted(change.desired), "attempts": change.attempts,
            "error": change.last_error or None, "azureRequestId": change.azure_request_id or None,
            "createdAt": jit_json.iso(change.created_at), "finishedAt": jit_json.iso(change.finished_at)}


def policy_json(actor, place: jit_json.PolicyPlace) -> dict | None:
    """The policy at ``place`` from the inventory, with the VMs ``actor`` may read; None when there is none."""
    vms = list(selectors.vm_list(actor, JIT_POLICY_READ).filter(
        subscription_key=place.subscription_id, state=VmState.CONFIGURED, policy_location=place.location,
        policy_resource_group__iexact=place.resource_group, policy_name__iexact=place.name).order_by("name", "pk"))
    mirror = authz.restrict(JitPolicy.objects.filter(resource_id=place.id.lower()), actor, JIT_POLICY_READ).first()
    if not vms and mirror is None:
        return None
    group = mirror.resource_group_name if mirror else (vms[0].policy_resource_group or place.resource_group)
    name = mirror.name if mirror else vms[0].policy_name
    return jit_json.policy_to_azure(subscription_id=place.subscription_id, resource_group=group,
                                    location=place.location, name=name, vms=vms,
                                    provisioning_state=mirror.provisioning_state if mirror else "")


def apply_and_wait(change_ids: list[int], timeout: float) -> list[PolicyChange]:
    """Apply each change in this process (a worker that got there first finishes it instead), waiting for each. As
    the apply task, whatever is not Azure's failure (a bug) fails the change with the reason, then propagates."""
    from cloud.errors import unexpected

    for change_id in change_ids:
        def step(change_id: int = change_id) -> float | None:
            try:
                outcome = services.policy_change_apply(change_id=change_id)
            except Exception as exc:  # the command's guard, as the task's (``tasks.apply_policy_change``)
                services.policy_change_fail(change_id=change_id, message=unexpected(exc))
                raise
            if PolicyChange.objects.filter(pk=change_id, state__in=[PolicyChange.State.APPLIED,
                                                                    PolicyChange.State.FAILED]).exists():
                return None
            return outcome.retry_after or 1.0

        run_until_done(step, timeout=timeout, what=f"JIT change #{change_id}")
    return list(PolicyChange.objects.filter(pk__in=change_ids).order_by("pk"))


class Command(BaseCommand):
    help = ("Set, show or remove JIT on VMs, with Set-AzJitNetworkAccessPolicy's options; --virtual-machine takes "
            "its -VirtualMachine array as JSON (inline, @file or - for stdin). Prints JSON.")
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("action", choices=ACTIONS, help="set: enable or edit; show: print; remove: take VMs out")
        parser.add_argument("--resource-group", "--resource-group-name", dest="resource_group",
                            help="the policy's resource group (its VMs' resource group)")
        parser.add_argument("--location", help="the policy's location (its VMs' location), e.g. westeurope")
        parser.add_argument("--name", default="default", help='the policy name (default "default")')
        parser.add_argument("--kind", default="Basic", help='only "Basic" (as Azure)')
        parser.add_argument("--subscription", help="the subscription id (default: the one of the VMs)")
        parser.add_argument("--resource-id", help="the policy's ARM id, instead of group, location and name")
        parser.add_argument("--virtual-machine", dest="virtual_machine",
                            help='JSON [{"id": VM id, "ports": [{"number", "protocol", "allowedSourceAddressPrefix",'
                                 ' "maxRequestAccessDuration"}]}], @file, or - for standard input')
        parser.add_argument("--vm-id", action="append", dest="vm_ids", default=[],
                            help="remove: a VM's ARM id (repeatable)")
        parser.add_argument("--actor", help="the portal user acting (needs the role at the VMs' scope); audited")
        parser.add_argument("--wait", action="store_true", help="apply in this process and wait for the result")
        parser.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits (default 300)")
        parser.add_argument("--refresh", action="store_true", help="show: sync the subscription from Azure first")

    def handle(self, *args, action: str, **options):
        if (options["kind"] or "").lower() != "basic":
            raise bad_input(f"--kind '{options['kind']}' is not supported: JIT policies are of kind Basic.")
        wait_seconds(options["timeout"])
        actor = resolve_actor(options["actor"])
        getattr(self, f"_{action}")(actor, options)

    # --- where --------------------------------------------------------------------------------------------------
    def _place(self, options, *, required: bool, vms: list[VirtualMachine] = ()) -> jit_json.PolicyPlace | None:
        """The policy the options name (``--resource-id``, or group, location, name and subscription)."""
        if options["resource_id"]:
            with refusals():
                return jit_json.parse_policy_id(options["resource_id"])
        group, location = options["resource_group"], options["location"]
        if not (group and location):
            if required:
                raise bad_input("Name the policy: --resource-group and --location (and --name, default "
                                "\"default\"), or --resource-id.")
            return None
        subscription = (options["subscription"] or "").strip().lower()
        if not subscription:
            found = sorted({vm.subscription_key for vm in vms})
            if len(found) > 1:
                raise bad_input(f"The VMs are in several subscriptions ({', '.join(found)}); one policy is in one.")
            subscription = found[0] if found else ""
        return jit_json.PolicyPlace(subscription, group.strip(), location.strip().lower(), options["name"].strip())

    def _subscription_for_show(self, actor, place: jit_json.PolicyPlace) -> jit_json.PolicyPlace:
        if place.subscription_id:
            return place
        found = sorted(set(selectors.vm_list(actor, JIT_POLICY_READ).filter(
            resource_group=place.resource_group.lower(), policy_location=place.location,
            policy_name__iexact=place.name).values_list("subscription_key", flat=True)))
        if len(found) > 1:
            raise bad_input(f"Resource group {place.resource_group} has a policy '{place.name}' in several "
                            f"subscriptions ({', '.join(found)}); pass --subscription.")
        if not found:
            raise refused(f"No JIT policy '{place.name}' in {place.resource_group}/{place.location} that you may "
                          f"read (pass --subscription, or --refresh with it to sync first).")
        return jit_json.PolicyPlace(found[0], place.resource_group, place.location, place.name)

    def _vms(self, actor, ids: list[str]) -> list[VirtualMachine]:
        with refusals():
            found = jit_json.vms_by_arm_id(actor, ids, VM_READ, verb="see")
        return [found[vm_id.strip().lower()] for vm_id in ids]

    # --- set ----------------------------------------------------------------------------------------------------
    def _set(self, actor, options) -> None:
        with refusals():
            entries = jit_json.policy_vms_from_azure(read_json(options["virtual_machine"], option="--virtual-machine",
                                                               stdin=options.get("stdin")))
        vms = self._vms(actor, [entry.vm_id for entry in entries])
        place = self._place(options, required=True, vms=vms)
        for vm in vms:
            self._check_place(vm, place)
        plans = {vm.pk: entry.ports for vm, entry in zip(vms, entries, strict=True)}
        changes: list[PolicyChange] = []
        with refusals(), stored(self.stderr):
            new: dict[tuple, list[VirtualMachine]] = {}
            for vm in vms:
                if vm.state == VmState.CONFIGURED:
                    changes.append(services.policy_save(actor=actor, vm=vm, ports=plans[vm.pk]))
                else:
                    new.setdefault(tuple(plans[vm.pk]), []).append(vm)
            for ports, members in new.items():
                changes.extend(services.policy_enable(actor=actor, vms=members, ports=list(ports),
                                                      policy_name=place.name, replace_pending=True))  # a set
        self._finish(actor, [c.pk for c in changes], options, show_policy=place)

    def _check_place(self, vm: VirtualMachine, place: jit_json.PolicyPlace) -> None:
        if place.subscription_id and vm.subscription_key != place.subscription_id:
            raise bad_input(f"VM {vm.name} is in subscription {vm.subscription_key}, not {place.subscription_id}.")
        if vm.resource_group != place.resource_group.lower() or vm.location.lower() != place.location:
            raise bad_input(f"VM {vm.name} is in resource group {vm.resource_group_name}, location {vm.location}: a "
                            f"JIT policy holds the VMs of its own resource group and location (--resource-group "
                            f"{place.resource_group} --location {place.location}).")
        if vm.policy_name and vm.policy_name.lower() != place.name.lower():
            raise bad_input(f"VM {vm.name} is in JIT policy '{vm.policy_name}', not '{place.name}'; pass --name "
                            f"{vm.policy_name}.")

    def _finish(self, actor, change_ids: list[int], options, *, show_policy: jit_json.PolicyPlace | None) -> None:
        if options["wait"]:
            with refusals():
                changes = apply_and_wait(change_ids, options["timeout"])
        else:
            changes = list(PolicyChange.objects.filter(pk__in=change_ids).order_by("pk"))
        failed = [c for c in changes if c.state == PolicyChange.State.FAILED]
        if options["wait"] and not failed and show_policy is not None:
            write_json(self.stdout, policy_json(actor, show_policy) or {"id": show_policy.id, "properties": {
                "virtualMachines": []}})
        else:
            body: dict = {"changes": [change_to_json(c) for c in changes]}
            if options["wait"] and not failed:
                places = {(c.subscription_key, c.resource_group_name, c.location.lower(), c.policy_name): None
                          for c in changes}
                body["policies"] = [policy_json(actor, jit_json.PolicyPlace(*key)) or {
                    "id": jit_json.PolicyPlace(*key).id, "properties": {"virtualMachines": []}} for key in places]
            write_json(self.stdout, body)
        if failed:
            raise refused("\n".join(f"JIT change #{c.pk} ({c.get_kind_display()}) failed: {c.last_error}"
                                    for c in failed))
        if not options["wait"]:
            self.stderr.write(f"Queued {len(changes)} JIT change(s); the portal's worker applies them "
                              f"(--wait to apply here).")

    # --- show ---------------------------------------------------------------------------------------------------
    def _show(self, actor, options) -> None:
        place = self._place(options, required=True)
        if options["refresh"]:
            self._refresh(actor, place.subscription_id, options)
        place = self._subscription_for_show(actor, place)
        body = policy_json(actor, place)
        if body is None:
            raise refused(f"No JIT policy {place.id} that you may read.")
        write_json(self.stdout, body)

    def _refresh(self, actor, subscription_id: str, options) -> None:
        if not subscription_id:
            raise bad_input("--refresh needs the subscription: --subscription or --resource-id.")
        subscription = next((s for s in selectors.syncable_subscriptions(actor)
                             if s.subscription_id == subscription_id), None)
        if subscription is None:
            raise refused(f"Only JIT policy admins in subscription {subscription_id} may sync it (or it is not "
                          f"registered, or disabled).")
        runs = []
        with refusals(), stored(self.stderr):  # disabled since it was listed: said, not a traceback
            runs.append(services.sync_request(actor=actor, subscription=subscription))
        run = runs[0]
        def step() -> float | None:
            outcome = services.sync_run(run_id=run.pk)
            run.refresh_from_db()
            return None if run.done else (outcome.retry_after or 1.0)

        with refusals():
            run_until_done(step, timeout=options["timeout"], what=f"The sync of {subscription}")
        if run.state in (run.State.FAILED, run.State.CANCELLED):
            raise refused(f"The sync of {subscription} {'failed' if run.state == run.State.FAILED else 'did not run'}: "
                          f"{run.error}")
        self.stderr.write(f"Synced {subscription}: {run.vms_seen} VMs.")

    # --- remove -------------------------------------------------------------------------------------------------
    def _remove(self, actor, options) -> None:
        ids = list(options["vm_ids"])
        if options["virtual_machine"]:
            given = read_json(options["virtual_machine"], option="--virtual-machine", stdin=options.get("stdin"))
            given = [given] if isinstance(given, dict | str) else given
            if not isinstance(given, list) or not all(
                    isinstance(e, str) or (isinstance(e, dict) and isinstance(e.get("id"), str)) for e in given):
                raise bad_input("--virtual-machine: give a list of VM ids, or of objects with 'id'.")
            ids.extend(e if isinstance(e, str) else e["id"] for e in given)
        if not ids:
            raise bad_input("Name the VMs to remove JIT from: --vm-id (repeatable) or --virtual-machine.")
        if len({i.strip().lower() for i in ids}) != len(ids):
            raise bad_input("A VM is listed twice.")
        vms = self._vms(actor, ids)
        place = self._place(options, required=False, vms=vms)
        for vm in vms:
            if place is not None and not place.holds(vm):
                raise bad_input(f"VM {vm.name} is not in JIT policy {place.id}"
                                f"{f' (it is in {vm.policy_id})' if vm.policy_name else ''}.")
        changes: list[PolicyChange] = []
        with refusals(), stored(self.stderr):
            changes.extend(services.policy_remove(actor=actor, vm=vm) for vm in vms)
        self._finish(actor, [c.pk for c in changes], options, show_policy=None)
