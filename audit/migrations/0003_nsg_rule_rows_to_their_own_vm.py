"""An NSG rule's Activity Log copy concerns the VM its JIT rule's name names: a policy write for several VMs gave
each of its rules' rows every VM of the write (so a VM's activity listed the others' rules). Rows stored that way
keep only that VM, in ``vm_ids`` and in the VM index; a row whose rule names none of its VMs is left as it is.
Only rule rows naming two VMs or more are read, by the operation's index, a chunk at a time in id order (nothing
held for the whole table); each chunk's rows are updated together, and the VM index loses the others' entries
through its (VM, event) key."""
import re

from django.db import migrations

RULE_OPERATIONS = ("Microsoft.Network/networkSecurityGroups/securityRules/write",
                   "Microsoft.Network/networkSecurityGroups/securityRules/delete")
CHUNK = 2000


def _name(resource_id: str) -> str:
    return (resource_id or "").rstrip("/").rsplit("/", 1)[-1].lower()


def _own(resource_id: str, shared: set[str]) -> list[str]:
    """The VMs of ``shared`` the rule ``resource_id`` names (``SecurityCenter-JITRule_<hash>_<vm>_<port>``)."""
    rule = _name(resource_id)
    return sorted(vm for vm in shared if re.fullmatch(
        rf"securitycenter-jitrule_[^_]+_{re.escape(_name(vm))}_\d{{1,5}}(?:_allow)?", rule))


def narrow_rule_rows(apps, schema_editor) -> None:
    Event = apps.get_model("audit", "ActivityLogEvent")
    EventVm = apps.get_model("audit", "ActivityLogEventVm")
    rows = Event.objects.filter(operation_name__in=RULE_OPERATIONS, vm_ids__regex=r"\S \S").order_by("pk")
    last = 0
    while True:
        chunk = list(rows.filter(pk__gt=last).values_list("pk", "event_data_id", "resource_id", "vm_ids")[:CHUNK])
        if not chunk:
            return
        last = chunk[-1][0]
        narrowed = []
        for pk, event_id, resource_id, vm_ids in chunk:
            shared = set((vm_ids or "").split())
            own = _own(resource_id, shared)
            if own and len(own) < len(shared):
                narrowed.append(Event(pk=pk, vm_ids=" " + " ".join(own) + " "))
                EventVm.objects.filter(vm_id__in=sorted(shared - set(own)), event_data_id=event_id).delete()
        Event.objects.bulk_update(narrowed, ["vm_ids"], batch_size=500)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_activity_log"),
    ]

    operations = [
        migrations.RunPython(narrow_rule_rows, migrations.RunPython.noop),
    ]
