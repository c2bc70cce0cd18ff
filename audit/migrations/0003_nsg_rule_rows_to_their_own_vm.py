"""An NSG rule's Activity Log copy concerns the VM its JIT rule's name names: a policy write for several VMs gave
each of its rules' rows every VM of the write (so a VM's activity listed the others' rules). Rows stored that way
keep only that VM, in ``vm_ids`` and in the VM index; a row whose rule names none of its VMs is left as it is.
Only rule rows naming two VMs or more are read, by the operation's index."""
import re

from django.db import migrations

RULE_OPERATIONS = ("Microsoft.Network/networkSecurityGroups/securityRules/write",
                   "Microsoft.Network/networkSecurityGroups/securityRules/delete")


def _name(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1].lower()


def narrow_rule_rows(apps, schema_editor) -> None:
    Event = apps.get_model("audit", "ActivityLogEvent")
    EventVm = apps.get_model("audit", "ActivityLogEventVm")
    narrowed = []
    rows = Event.objects.filter(operation_name__in=RULE_OPERATIONS, vm_ids__regex=r"\S \S").values_list(
        "pk", "event_data_id", "resource_id", "vm_ids")
    for pk, event_id, resource_id, vm_ids in rows.iterator(chunk_size=2000):
        rule = _name(resource_id)
        shared = set(vm_ids.split())
        own = sorted(vm for vm in shared if re.fullmatch(
            rf"securitycenter-jitrule_[^_]+_{re.escape(_name(vm))}_\d{{1,5}}(?:_allow)?", rule))
        if own and len(own) < len(shared):
            narrowed.append((pk, event_id, own))
    for pk, event_id, own in narrowed:
        Event.objects.filter(pk=pk).update(vm_ids=" " + " ".join(own) + " ")
        EventVm.objects.filter(event_data_id=event_id).exclude(vm_id__in=own).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_activity_log"),
    ]

    operations = [
        migrations.RunPython(narrow_rule_rows, migrations.RunPython.noop),
    ]
