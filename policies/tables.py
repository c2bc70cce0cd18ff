"""The inventory table (django-tables2): the columns of each tab and the row menu."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import quote, urlencode

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django_tables2.columns import BoundColumn

from jitportal.lib.tables import SortableTable, TimeColumn, object_url
from jitportal.lib.times import zoned_time

from .models import ConnectionType, PolicyChange, VirtualMachine, VmState
from .rules import MAX_POLICY_AND_VM_NAME
from .selectors import BLOCKS_ENABLE

COMMON = ("name", "subscription", "resource_group_name", "location", "os_type")
COLUMNS_BY_TAB = {
    VmState.CONFIGURED: ("select", *COMMON, "approved_requests_7d", "last_access_at", "connection", "last_user",
                         "actions"),
    VmState.NOT_CONFIGURED: ("select", *COMMON, "connection", "actions"),
    VmState.UNSUPPORTED: (*COMMON, "unsupported_reason", "actions"),
}
# What ``render_rows``, ``open_access_by_vm`` and ``selectors.policy_names_too_long`` read of a VM (and its
# subscription's name): the page query loads only these, not the subscription's resource group and location lists
# once per row.
ROW_FIELDS = ("name", "arm_id", "resource_id", "subscription_key", "resource_group", "subscription__display_name",
              "subscription__subscription_id", "subscription__defender_p2", "resource_group_name",
              "location", "os_type", "state", "unsupported_reason", "connection_type", "firewall_public_ip",
              "public_ip", "private_ip", "ports", "policy_resource_group", "policy_location", "policy_name",
              "approved_requests_7d", "last_access_at", "last_user", "drift_count")
# A change queued and not applied yet, named on its VM's row; an enable or removal pending leaves the row unselectable.
PENDING_LABELS = {PolicyChange.Kind.ENABLE: "Enabling JIT…", PolicyChange.Kind.SAVE: "Saving JIT settings…",
                  PolicyChange.Kind.REMOVE: "Removing JIT…"}
# The JIT settings page of a Not configured VM, in its row menu and on its page (whose "Enable JIT" enables the OS
# default in one click).
ENABLE_WITH_SETTINGS = "Enable JIT with custom settings…"
# The connection's icons, drawn inline (an emoji showed as an empty box without an emoji font); sized by
# ``.conn-icon`` in policies.css, hidden from screen readers: the text beside each names it.
_ICON = ('<svg class="conn-icon" aria-hidden="true" focusable="false" width="14" height="14" viewBox="0 0 16 16" '
         'fill="currentColor"><path d="{}"/></svg>')
FIREWALL_ICON = _ICON.format("M1 2h6v3H1zM8 2h7v3H8zM1 6h3v3H1zM5 6h6v3H5zM12 6h3v3h-3zM1 10h6v3H1zM8 10h7v3H8z")
NSG_ICON = _ICON.format("M8 1 2 3.5V8c0 3.5 2.6 6.3 6 7 3.4-.7 6-3.5 6-7V3.5z")
ACTIONS_HEADER = mark_safe('<span class="visually-hidden">Actions</span>')  # a named column, shown empty
PENDING_UNSELECTABLE = BLOCKS_ENABLE  # the bulk Enable JIT leaves such a VM out too (``BulkEnableForm``)


class VirtualMachineTable(SortableTable):
    """VMs of one tab; ``select`` boxes feed the bulk "Enable JIT" or "Request access" form (``render_rows``)."""

    select = tables.CheckBoxColumn(accessor="pk", attrs={"input": {"name": "vm"}, "th__input": {"class": "select-all"}})
    name = tables.Column(linkify=("policies:vm_detail", {"pk": tables.A("pk")}), verbose_name="Name")
    subscription = tables.Column(accessor="subscription__display_name", order_by=("subscription_key",),
                                 verbose_name="Subscription")
    resource_group_name = tables.Column(verbose_name="Resource group", order_by=("resource_group",))
    location = tables.Column()
    os_type = tables.Column(verbose_name="OS")
    approved_requests_7d = tables.Column(verbose_name="Approved requests (7 days)")
    last_access_at = TimeColumn(verbose_name="Last access")  # rendered by ``render_rows``
    connection = tables.Column(accessor="connection_type", verbose_name="Connection details",
                               order_by=("connection_type",))
    last_user = tables.Column(verbose_name="Last user")
    unsupported_reason = tables.Column(verbose_name="Reason", orderable=False, empty_values=())
    actions = tables.Column(empty_values=(), orderable=False, verbose_name=ACTIONS_HEADER)

    class Meta:
        model = VirtualMachine
        fields = ()
        sequence = ("select", *COMMON, "approved_requests_7d", "last_access_at", "connection", "last_user",
                    "unsupported_reason", "actions")
        attrs = {"id": "result_list", "class": "vm-table"}
        row_attrs = {"data-vm": lambda record: record.name, "class": lambda record: "drift" if record.drift_count
                     else ""}
        empty_text = "No virtual machines match."
        order_by = ("name",)

    def __init__(self, *args, tab: str = VmState.CONFIGURED, selectable: bool = False, **kwargs):
        shown = set(COLUMNS_BY_TAB[tab])
        if not selectable:
            shown.discard("select")
        exclude = [name for name in self.Meta.sequence if name not in shown]
        super().__init__(*args, exclude=exclude, **kwargs)

    def get_column_class_names(self, classes_set: set[str], bound_column: BoundColumn) -> set[str]:
        """Each header cell is also ``col-<column>`` (the page's styles and tests find them by it)."""
        return {*super().get_column_class_names(classes_set, bound_column), f"col-{bound_column.name}"}


def _connection(vm: VirtualMachine, open_now: list[tuple[str, list[int]]] | None = None) -> str:
    """Where JIT acts (the firewall wins when both guard the VM), the policy's ports, and who has access now."""
    if vm.connection_type == ConnectionType.FIREWALL:
        cell = ('<span class="conn conn-firewall" title="Azure Firewall">'
                f"{FIREWALL_ICON} Firewall</span> "
                f"<small>{escape(vm.firewall_public_ip)}</small>")
    elif vm.connection_type == ConnectionType.NSG:
        cell = ('<span class="conn conn-nsg" title="Network security group">'
                f"{NSG_ICON} NSG</span> "
                f"<small>{escape(vm.public_ip or vm.private_ip)}</small>")
    else:
        return "—"
    numbers = sorted({int(port["number"]) for port in vm.ports or [] if str(port.get("number", "")).isdigit()})
    if numbers:
        cell += f'<br><small class="conn-ports">Ports {", ".join(map(str, numbers))}</small>'
    if open_now:
        # A user name may break before its "@" (the column need not be as wide as the longest one).
        people = "; ".join(f"{escape(name).replace('@', '<wbr>@')} ({', '.join(map(str, ports))})"
                           for name, ports in open_now)
        cell += f'<br><small class="conn-open">Open now: {people}</small>'
    return cell


def too_long_text(vm_name: str, policy_name: str) -> str:
    """Why a VM's row cannot be selected for Enable JIT: its name is too long for ``policy_name``."""
    return (f"Cannot be selected: its name and the JIT policy name '{policy_name}' are "
            f"{len(vm_name) + len(policy_name)} characters together (Azure allows {MAX_POLICY_AND_VM_NAME}); its page "
            "says what to do.")


def render_rows(vms: list[VirtualMachine], shown: Mapping[str, str], *, menu: Callable[[VirtualMachine], set[str]],
                select_form: str = "", select_needs: str = "",
                open_now: dict[int, list[tuple[str, list[int]]]] | None = None,
                pending: dict[int, tuple[int, str]] | None = None, too_long: dict[int, str] | None = None,
                back: str = "") -> SafeString:
    """The ``<tr>`` of each VM for the columns ``shown``, each to its header as plain text
    (``jitportal.lib.tables.column_labels``), which every cell carries in ``data-label`` for the cards a phone shows
    (``table.stacked`` in portal.css). Rendered in Python: 50 rows cost ~1 ms, not ~50. The
    ``select`` boxes belong to the form with id ``select_form``, on the rows whose menu has ``select_needs`` (a VM
    the user may not act on has none) and no enable or removal pending; ``open_now`` is who has access to which VM
    (``access.selectors.open_access_by_vm``); ``pending`` the change still to apply to a VM
    (``selectors.pending_changes_by_vm``), named on its row with a link to its status on the VM's page; ``too_long``
    the VMs whose name is too long for the JIT policy Enable JIT would put them in (``selectors.policy_names_too_long``:
    VM pk → that policy's name), said so on their row. A row that cannot be selected for a reason its row states has a
    disabled box described by that reason; ``menu``
    names the row-menu items the user may use on a VM (``edit``, ``connect``, ``activity``), of which a VM where no
    access can be requested (no JIT, or Defender for Servers Plan 2 off) shows no Connect and a Not configured one
    names Edit ``ENABLE_WITH_SETTINGS`` (as its page does); ``back`` the list's query string, which Edit carries so
    that it returns to the list as shown."""
    urls = {name: object_url(f"policies:{view}") for name, view in (
        ("detail", "vm_detail"), ("edit", "policy_edit"), ("connect", "connect"))}
    activity = reverse("audit:search") + "?vm="
    edit_back = escape("?" + urlencode({"back": back})) if back else ""
    td = {name: f'<td data-label="{escape(label)}"' for name, label in shown.items()}  # each cell's opening, unclosed
    out = []
    for vm in vms:
        pk = str(vm.pk)
        detail, edit, connect = (urls[n](pk) for n in ("detail", "edit", "connect"))
        name = escape(vm.name)
        cells = []
        # JIT can be neither configured nor requested on an unsupported VM: no Edit, no Connect. Access is asked
        # only where JIT is enabled (the Connect page of another VM says only that it is not); on a Not configured
        # VM, Edit enables it.
        # Configured on a subscription without Defender for Servers Plan 2: Azure opens nothing, so nothing to ask.
        items = may = menu(vm)
        if vm.state == VmState.UNSUPPORTED:
            items = items - {"edit", "connect"}
        elif not vm.requestable:
            items = items - {"connect"}
        change = (pending or {}).get(vm.pk)
        unavailable = vm.state == VmState.CONFIGURED and vm.subscription.defender_missing
        policy = (too_long or {}).get(vm.pk)
        if "select" in shown:
            # Why the row may not be selected, said beside its name (the id of that text); none: it may be.
            why = (f"pending-{pk}" if change and change[1] in PENDING_UNSELECTABLE else
                   f"defender-{pk}" if unavailable and select_needs == "connect" else
                   f"too-long-{pk}" if policy is not None else "")
            if why and (not select_needs or select_needs in may):
                cells.append(f'{td["select"]}><input type="checkbox" disabled aria-label="Select {name}" '
                             f'aria-describedby="{why}"></td>')
            elif not why and (not select_needs or select_needs in items):
                cells.append(f'{td["select"]}><input type="checkbox" name="vm" value="{pk}" '
                             f'form="{escape(select_form)}" aria-label="Select {name}"></td>')
            else:
                cells.append(f'{td["select"]}></td>')  # the user may not act on it (or no reason is stated)
        flag = ' <span class="drift-flag" title="Drift or tampering found">&#x26A0; drift</span>' \
            if vm.drift_count else ""
        if unavailable:
            flag += (f' <span class="defender-flag" id="defender-{pk}" '
                     f'title="{escape(vm.subscription.defender_missing_message)}">'
                     "JIT unavailable: Defender for Servers Plan 2 is off</span>")
        if change:
            flag += (f' <a class="pending-change" href="{detail}#change-{change[0]}" id="pending-{pk}" '
                     f'title="Not applied in Azure yet">{escape(PENDING_LABELS.get(change[1], "Change pending…"))}</a>')
        if policy is not None:
            flag += (f' <span class="too-long-flag" id="too-long-{pk}">{escape(too_long_text(vm.name, policy))}'
                     "</span>")
        cells.append(f'{td["name"]}><a href="{detail}">{name}</a>{flag}</td>')
        cells.append(f'{td["subscription"]}>{escape(vm.subscription.display_name or vm.subscription_key)}</td>')
        cells.append(f'{td["resource_group_name"]}>{escape(vm.resource_group_name)}</td>'
                     f'{td["location"]}>{escape(vm.location)}</td>{td["os_type"]}>{escape(vm.os_type or "—")}</td>')
        if "approved_requests_7d" in shown:
            cells.append(f'{td["approved_requests_7d"]}>{vm.approved_requests_7d}</td>')
        if "last_access_at" in shown:
            cells.append(f'{td["last_access_at"]} class="nowrap">{zoned_time(vm.last_access_at)}</td>')
        if "connection" in shown:
            cells.append(f'{td["connection"]}>{_connection(vm, (open_now or {}).get(vm.pk))}</td>')
        if "last_user" in shown:
            user = escape(vm.last_user)  # a long name is cut short on the page: the whole of it is its title
            cells.append(f'{td["last_user"]}><span class="last-user" title="{user}">{user}</span></td>' if user
                         else f'{td["last_user"]}>—</td>')
        if "unsupported_reason" in shown:
            cells.append(f'{td["unsupported_reason"]} class="unsupported-reason">{escape(vm.unsupported_message)}</td>')
        edit_label = ENABLE_WITH_SETTINGS if vm.state == VmState.NOT_CONFIGURED else "Edit"
        edit_item = f'<li><a href="{edit}{edit_back}">{edit_label}</a></li>' if "edit" in items else ""
        activity_item = (f'<li><a href="{escape(activity + quote(vm.arm_id, safe="/"))}">Activity log</a></li>'
                         if "activity" in items else "")
        connect_item = f'<li><a href="{connect}">Connect</a></li>' if "connect" in items else ""
        cells.append(
            f'{td["actions"]} class="row-actions"><details class="row-menu">'
            f'<summary aria-label="Actions for {name}">&hellip;</summary><ul>'
            f'<li><a href="{detail}">Details</a></li>{edit_item}{activity_item}{connect_item}</ul></details></td>')
        drift = ' class="drift"' if vm.drift_count else ""
        out.append(f'<tr data-vm="{name}"{drift}>{"".join(cells)}</tr>')
    return mark_safe("".join(out))  # noqa: S308 - every value above is escaped
