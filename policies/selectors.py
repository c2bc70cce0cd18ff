"""Reads for the inventory and policy pages, already restricted to what the user may see."""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Length
from django.db.models.lookups import GreaterThan
from django.http import Http404, QueryDict

from accounts import authz
from accounts.roles import JIT_POLICY_READ, JIT_POLICY_WRITE, SETTINGS_WRITE, VM_READ, VM_WRITE
from accounts.scopes import ScopeKind, valid_scopes

from . import change_notes, rules
from .filtersets import VirtualMachineFilterSet
from .models import DriftFinding, JitPolicy, PolicyChange, Subscription, SyncRun, VirtualMachine, VmState

TAB_ORDER = (VmState.CONFIGURED, VmState.NOT_CONFIGURED, VmState.UNSUPPORTED)


def _vm_scope_q(user, action: str) -> Q | None:
    """The rows ``user`` may perform ``action`` on, as one condition (None: everywhere).

    Same meaning as ``accounts.authz.restrict``, but exact matches on the lower-cased columns the inventory
    stores (``subscription_key``, ``resource_group``, ``resource_id``), so the list queries use indexes.
    """
    scopes = authz.permitted_scopes(user, action)
    if authz.EVERYWHERE in scopes:
        return None
    condition = Q(pk__in=[])
    for parsed in valid_scopes(scopes):
        if parsed.vm_name:
            condition |= Q(resource_id=parsed.id.lower())
        elif parsed.resource_group:
            condition |= Q(subscription_key=parsed.subscription_id, resource_group=parsed.resource_group.lower())
        else:
            condition |= Q(subscription_key=parsed.subscription_id)
    return condition


def vm_list(user, action: str = VM_READ) -> QuerySet[VirtualMachine]:
    """The VMs ``user`` may read (one database-side condition), with their subscription."""
    queryset = VirtualMachine.objects.select_related("subscription")
    condition = _vm_scope_q(user, action)
    return queryset if condition is None else queryset.filter(condition)


def filter_choices(user, subscriptions: list[Subscription]) -> tuple[list[str], list[str]]:
    """(resource groups, locations) for the inventory filters: from the last sync of the subscriptions ``user`` reads
    whole (no scan), else the resource groups of their grants and the locations of the VMs they may read."""
    scopes = authz.permitted_scopes(user, VM_READ)
    groups: set[str] = set()
    locations: set[str] = set()
    partial: list[str] = []
    for subscription in subscriptions:
        whole = authz.EVERYWHERE in scopes or any(
            s.rstrip("/").lower() == subscription.scope_id for s in scopes)
        if whole:
            groups.update(subscription.resource_groups)
            locations.update(subscription.locations)
            continue
        partial.append(subscription.subscription_id)
        for parsed in valid_scopes(scopes):
            if parsed.subscription_id == subscription.subscription_id and parsed.resource_group:
                groups.add(parsed.resource_group.lower())
    if partial:
        locations.update(vm_list(user).filter(subscription_key__in=partial).exclude(location="").order_by()
                         .values_list("location", flat=True).distinct())
    return sorted(groups), sorted(locations)


def inventory_filterset(user, data, subscriptions: list[Subscription] | None = None) -> VirtualMachineFilterSet:
    """The inventory's filters over the VMs ``user`` may read, with the choices of their scope (``data``: the query)."""
    if subscriptions is None:
        subscriptions = visible_subscriptions(user)
    groups, locations = filter_choices(user, subscriptions)
    return VirtualMachineFilterSet(data or None, queryset=vm_list(user), subscriptions=subscriptions,
                                   resource_groups=groups, locations=locations)


# --- "all VMs that match" (the inventory's select-across): the filter travels, never the ids ---------------------
MATCH_PARAMS = tuple(VirtualMachineFilterSet.base_filters)  # q, subscription, resource_group, os, location, …
# The names a message about VMs left out of "all that match" gives before "and N more".
LEFT_OUT_NAMED = 3


def match_query(data) -> list[tuple[str, str]]:
    """The inventory filter of ``data`` (a query), only its own parameters with a value: what "all VMs that match"
    carries to the page that acts on them, and back. A parameter given twice counts with its last value, as the
    filterset's form reads it (``QueryDict.get``): the page acts on the VMs the inventory counted."""
    return [(name, value) for name in MATCH_PARAMS for value in data.getlist(name)[-1:] if value.strip()]


@dataclass
class Matching:
    """The VMs of one tab the inventory's filter matches now, as one bulk action takes them: ``count`` how many the
    user may act on (``over_cap``: more than the action takes, and nothing of them was read), ``vms`` those loaded
    (all of them, or only the first few by name the page names), ``pks`` all of their ids, ``left_out`` why the
    others were taken out (a message each, naming a few of them), ``summary`` the filter in words and ``query`` as
    parameters. ``errors``: the filter's own (nothing is matched then)."""

    vms: list[VirtualMachine] = field(default_factory=list)
    count: int = 0
    over_cap: bool = False
    pks: list[int] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    summary: list[tuple[str, str]] = field(default_factory=list)
    query: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        """Names the set the action takes (all of ``pks``, not only the ``vms`` loaded): the form carries it, so a
        save re-evaluating the filter acts only on the VMs the page showed (or shows the page again when the filter
        now matches others)."""
        return selection_digest(self.pks)


def selection_digest(pks: list[int]) -> str:
    return hashlib.sha256(",".join(str(pk) for pk in sorted(pks)).encode()).hexdigest()[:20]


def left_out_message(count: int, names: list[str], why: str) -> list[str]:
    """The message saying ``count`` matching VMs were left out and ``why``, naming ``names`` (the first few by name)
    and counting the rest."""
    if not count:
        return []
    more = count - len(names)
    listed = ", ".join(names) + (f" and {more:,} more" if more > 0 else "")
    return [f"{count:,} matching VM{'s' if count != 1 else ''} ({listed}) {'were' if count != 1 else 'was'} left "
            f"out: {why}"]


# Why a matching VM is left out: a sentence, or one made from the query of those left out for it.
Why = str | Callable[[QuerySet[VirtualMachine]], str]


def _left_out(queryset: QuerySet[VirtualMachine], why: Why) -> list[str]:
    """``left_out_message`` for the VMs of ``queryset``: their first names (one query), and when there are more, how
    many (a second, ``COUNT``); none of their rows is read."""
    names = list(queryset.order_by("name", "pk").values_list("name", flat=True)[:LEFT_OUT_NAMED + 1])
    if not names:
        return []
    count = len(names) if len(names) <= LEFT_OUT_NAMED else queryset.order_by().count()
    return left_out_message(count, names[:LEFT_OUT_NAMED], why(queryset) if callable(why) else why)


def defender_off(queryset: QuerySet[VirtualMachine]) -> str:
    """Why VMs on subscriptions without Defender for Servers Plan 2 are left out, naming those subscriptions."""
    names = sorted({str(s) for s in Subscription.objects.filter(pk__in=queryset.order_by().values("subscription_id"))})
    return f"Defender for Servers Plan 2 is off on the subscription ({', '.join(names)})."


DEFENDER_OFF = Q(subscription__defender_p2=False)


def vms_matching(user, data, *, state: str, action: str, also: tuple[str, ...] = (),
                 refused: str = "your role does not allow it there.",
                 unusable: Sequence[tuple[Q | Exists, Why]] = (), cap: int, shown: int | None = None) -> Matching:
    """The VMs of tab ``state`` the inventory filter in ``data`` matches, evaluated now with the page's filterset
    over the VMs ``user`` reads; of those, the ones where they hold ``action`` (and each of ``also``) at the VM's
    scope and that meet none of the ``unusable`` conditions. Those left out are counted and named with the reason
    (never acted on); a VM they do not read is never matched at all.

    The set is counted first (one ``COUNT`` over the scoped, filtered query): past ``cap``, ``over_cap`` and nothing
    else is read. Else its ids are read (at most ``cap`` + 1, should it have grown since), and its rows: all of
    them, or with ``shown`` only the first that many by name (what a page names)."""
    query = match_query(data)
    filterset = inventory_filterset(user, _query_dict(query) if query else None)
    found = Matching(query=query)
    if filterset.is_bound and not filterset.is_valid():
        found.errors = [f"{filterset.form.fields[name].label}: {' '.join(problems)}"
                        for name, problems in filterset.form.errors.items()]
        return found
    choices = {name: dict(filterset.form.fields[name].choices) for name in ("subscription", "connection")}
    for name, value in query:
        label = str(filterset.form.fields[name].label)
        found.summary.append((label, str(choices.get(name, {}).get(value, value))))
    matching = filterset.qs.filter(state=state)
    conditions = [condition for condition in (_vm_scope_q(user, each) for each in (action, *also))
                  if condition is not None]
    allowed = matching.filter(*conditions)
    taken = allowed
    for condition, _why in unusable:
        taken = taken.exclude(condition)
    found.count = taken.order_by().count()
    if found.count > cap:
        found.over_cap = True
        return found
    ordered = taken.order_by("name", "pk")
    if shown is None:
        found.vms = list(ordered[:cap + 1])
        found.pks = [vm.pk for vm in found.vms]
    else:
        found.pks = list(taken.order_by().values_list("pk", flat=True)[:cap + 1])
        found.vms = list(ordered[:shown]) if found.pks else []
    if len(found.pks) > cap:  # more than counted a moment ago (a sync meanwhile): still past the cap
        found.count, found.over_cap, found.vms, found.pks = len(found.pks), True, [], []
        return found
    found.count = len(found.pks)
    found.pks.sort()
    if conditions:
        combined = conditions[0]
        for condition in conditions[1:]:
            combined &= condition
        found.left_out = _left_out(matching.exclude(combined), refused)
    for condition, why in unusable:
        found.left_out += _left_out(allowed.filter(condition), why)
    return found


def _query_dict(query: list[tuple[str, str]]) -> QueryDict:
    data = QueryDict(mutable=True)
    for name, value in query:
        data[name] = value
    return data


def enable_matching(user, data, *, cap: int, shown: int | None = None) -> Matching:
    """All Not configured VMs the filter in ``data`` matches that ``user`` may enable JIT on now (as a page's
    selection, ``forms.BulkEnableForm``): policy admin at the VM (JIT policy write and VM write), not being enabled
    or having JIT removed, on a subscription with Defender for Servers Plan 2; the others are left out, said why.
    ``cap`` and ``shown``: as ``vms_matching``."""
    return vms_matching(user, data, state=VmState.NOT_CONFIGURED, action=JIT_POLICY_WRITE, also=(VM_WRITE,),
                        refused="you may not configure JIT there.", cap=cap, shown=shown, unusable=[
                            (enable_blocked_condition(),
                             "JIT is being enabled or removed there (saved, not applied in Azure yet)."),
                            (DEFENDER_OFF, defender_off),
                            (name_too_long_condition(), _names_too_long)])


def vm_counts_by_state(queryset: QuerySet[VirtualMachine]) -> dict[str, int]:
    """The three tab counts in one grouped query (``COUNT(*)``: PostgreSQL answers it from the index alone)."""
    counts = {state.value: 0 for state in TAB_ORDER}
    rows = queryset.order_by().values_list("state").annotate(n=Count("*"))
    for state, n in rows:
        counts[state] = n
    return counts


def vm_get(user, pk: int, action: str = VM_READ) -> VirtualMachine:
    """One VM ``user`` may perform ``action`` on, else ``Http404``."""
    try:
        return vm_list(user, action).get(pk=pk)
    except (VirtualMachine.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such object.") from exc


def vm_open_drift(vm: VirtualMachine) -> QuerySet[DriftFinding]:
    return vm.drift.filter(resolved_at__isnull=True).order_by("kind", "key")


def vm_recent_changes(user, vm: VirtualMachine, limit: int = 10) -> list[PolicyChange]:
    """The newest changes of ``vm``, each as ``user`` may see it (``changes_as_seen``)."""
    return changes_as_seen(user, list(vm.changes.select_related("created_by").order_by("-created_at", "-id")[:limit]))


def _reads(user, resource_id: str) -> bool:
    """Whether ``user`` may read ``resource_id`` on a page: its VM page (VM read) or its JIT policy."""
    return authz.has_permission(user, VM_READ, resource_id) or authz.has_permission(user, JIT_POLICY_READ, resource_id)


def changes_as_seen(user, changes: list[PolicyChange]) -> list[PolicyChange]:
    """``changes``, each with what ``user`` may see of it: ``withheld``, how many of its VMs are outside their scope,
    ``shown_error``, its ``last_error`` without what concerns those (``change_notes.error_seen``), ``shown_desired``,
    its ``desired`` without those VMs, and ``seen_vms``, how many they may read (``None``: all). Who may read a
    change's whole policy sees all of it, without a query; for the others, one query in all (how many VMs each change
    has, and how many of them they may read), and one more when a note names VMs."""
    partial = {}
    for change in changes:
        change.withheld, change.shown_error, change.seen_vms = 0, change.last_error, None
        change.shown_desired = change.desired
        if not _reads(user, change.policy_id):
            partial[change.pk] = change
    if not partial:
        return changes
    links = PolicyChange.vms.through.objects.filter(policychange_id__in=partial).order_by()
    conditions = [_vm_scope_q(user, action) for action in (VM_READ, JIT_POLICY_READ)]
    readable = (Q() if None in conditions
                else Q(virtualmachine__in=VirtualMachine.objects.filter(conditions[0] | conditions[1])))
    counts = {pk: (total, seen) for pk, total, seen in links.values_list("policychange_id").annotate(
        total=Count("pk"), seen=Count("pk", filter=readable)).values_list("policychange_id", "total", "seen")}
    kept = {pk: change_notes.kept_names(change.last_error) for pk, change in partial.items()}
    names: set[tuple[int, str]] = set()
    if any(kept.values()):  # a note about VMs a newer change kept: which of them they may read
        asked = {name for listed in kept.values() for name in listed}
        names = {(pk, name.lower()) for pk, name in links.filter(readable, virtualmachine__name__in=asked)
                 .values_list("policychange_id", "virtualmachine__name")}
    for pk, change in partial.items():
        total, change.seen_vms = counts.get(pk, (0, 0))
        change.withheld = total - change.seen_vms
        change.shown_error = change_notes.error_seen(
            change.last_error, readable_names={name for change_id, name in names if change_id == pk},
            withheld=change.withheld)
        if change.withheld:
            change.shown_desired = {vm_id: ports for vm_id, ports in change.desired.items() if _reads(user, vm_id)}
    return changes


def change_seen_get(user, pk: int) -> PolicyChange:
    """One policy change shown on a VM page ``user`` may read (one of its VMs is in their scope), as they may see it
    (``changes_as_seen``), else ``Http404``: what its status line polls."""
    change = (PolicyChange.objects.select_related("created_by").filter(pk=pk).first()
              if isinstance(pk, int) or str(pk).isdigit() else None)
    if change is None or changes_as_seen(user, [change])[0].seen_vms == 0:
        raise Http404("No such object.")
    return change


def vm_pending_change(vm: VirtualMachine) -> PolicyChange | None:
    """The newest change of ``vm`` when it is still queued or running (not applied in Azure yet)."""
    latest = vm.changes.select_related("created_by").order_by("-pk").first()
    return latest if latest is not None and not latest.done else None


def ports_to_be(vm: VirtualMachine, pending: PolicyChange | None, current: list[dict] | None = None) -> list[dict]:
    """The ports ``vm`` will have: those its ``pending`` change (``vm_pending_change``) sets (none for a removal),
    else ``current`` (default: its ports as loaded). An edit form's basis is taken from them, so that a removal saved
    meanwhile counts as a change."""
    if pending is not None and vm.arm_id in pending.desired:
        return pending.desired[vm.arm_id] or []
    return vm.ports if current is None else current


def pending_changes_by_vm(vms: list[VirtualMachine] | QuerySet[VirtualMachine]) -> dict[int, tuple[int, str]]:
    """VM pk → (change pk, kind) of each VM whose newest change is still queued or running (``vm_pending_change``
    for a page of VMs), in one query over the pending changes only."""
    links = PolicyChange.vms.through.objects
    newer = links.filter(virtualmachine_id=OuterRef("virtualmachine_id"),
                         policychange_id__gt=OuterRef("policychange_id"))
    ids = vms.order_by().values("pk") if isinstance(vms, QuerySet) else [vm.pk for vm in vms]
    rows = (links.filter(virtualmachine_id__in=ids,
                         policychange__state__in=(PolicyChange.State.QUEUED, PolicyChange.State.RUNNING))
            .exclude(Exists(newer)).values_list("virtualmachine_id", "policychange_id", "policychange__kind"))
    return {vm_id: (change_id, kind) for vm_id, change_id, kind in rows}


def pending_changes_shown(user, vms: list[VirtualMachine],
                          pending: dict[int, tuple[int, str]]) -> list[tuple[PolicyChange, list[str]]]:
    """Each change ``pending`` names (``pending_changes_by_vm``) with the names of its VMs among ``vms``, oldest
    first, as ``user`` may see it (``changes_as_seen``): the inventory lists them above its rows, each updating itself
    until Azure has applied it or refused."""
    names: dict[int, list[str]] = {}
    for vm in vms:
        if vm.pk in pending:
            names.setdefault(pending[vm.pk][0], []).append(vm.name)
    changes = changes_as_seen(user, list(PolicyChange.objects.filter(pk__in=names).select_related("created_by")
                                         .order_by("pk")))
    return [(change, names[change.pk]) for change in changes]


# The most changes ``?saved=`` names (a bulk enable of one inventory page makes at most one per VM of it).
SAVED_MAX = 100
# The VM names a saved change's line gives before "and N more".
SAVED_NAMES = 8


def saved_changes_shown(user, saved: str) -> list[tuple[PolicyChange, list[str], int]]:
    """The changes a save made (``saved``: their ids, comma-separated, as Enable JIT redirects with), oldest first, as
    ``user`` may see them (``changes_as_seen``; none of whose VMs they read is left out), each with the first names of
    its VMs they read and how many more: the inventory follows every change of the save, applied or failed with
    Azure's reason, whichever page their VMs are on. Two queries."""
    ids = sorted({int(part) for part in saved.split(",")[:SAVED_MAX] if part.isdigit() and len(part) < 19})
    if not ids:
        return []
    changes = changes_as_seen(user, list(PolicyChange.objects.filter(pk__in=ids).select_related("created_by")
                                         .order_by("pk")))
    names: dict[int, list[str]] = {}
    links = PolicyChange.vms.through.objects.filter(policychange_id__in=ids,
                                                    virtualmachine__in=vm_list(user).order_by())
    for change_id, name in links.order_by("virtualmachine__name").values_list("policychange_id",
                                                                             "virtualmachine__name"):
        names.setdefault(change_id, []).append(name)
    return [(change, names[change.pk][:SAVED_NAMES], len(names[change.pk]) - SAVED_NAMES)
            for change in changes if change.pk in names]


# A pending change of these kinds leaves its VM out of Enable JIT (the inventory's row is not selectable): enabling it
# again would queue a second change behind it. Edit (a change of its ports) still may, starting from the pending ports.
BLOCKS_ENABLE = frozenset({PolicyChange.Kind.ENABLE, PolicyChange.Kind.REMOVE})


def enable_blocked(vms: list[VirtualMachine] | QuerySet[VirtualMachine]) -> dict[int, str]:
    """VM pk → kind of the pending change (``BLOCKS_ENABLE``) that keeps each of ``vms`` out of Enable JIT."""
    return {vm_id: kind for vm_id, (_change, kind) in pending_changes_by_vm(vms).items() if kind in BLOCKS_ENABLE}


def enable_blocked_condition() -> Exists:
    """``enable_blocked`` as a condition on VMs (for a query over many, never read row by row): the VM's newest change
    is still queued or running and of a kind in ``BLOCKS_ENABLE``."""
    links = PolicyChange.vms.through.objects
    newer = links.filter(virtualmachine_id=OuterRef("virtualmachine_id"),
                         policychange_id__gt=OuterRef("policychange_id"))
    return Exists(links.filter(virtualmachine_id=OuterRef("pk"), policychange__kind__in=BLOCKS_ENABLE,
                               policychange__state__in=(PolicyChange.State.QUEUED, PolicyChange.State.RUNNING))
                  .exclude(Exists(newer)))


# Resource groups per lookup of the policies there (the query's parameters stay under SQLite's 999).
_GROUPS_PER_LOOKUP = 500


def policy_places(vms: list[VirtualMachine], name: str | None = None) -> dict[int, tuple[str, str, str]]:
    """VM pk → (resource group as Azure spells it, location, policy name) of the policy each of ``vms`` belongs or
    will belong to: its own; else the one named ``name`` (the seed's ``Set-AzJitNetworkAccessPolicy -Name VM1``),
    existing or new; else the first by name of its resource group and location whose name fits with the VM's
    (``rules.name_fits``), or the first there, or a new ``default``. The policies are read once for all the VMs (one
    query per ``_GROUPS_PER_LOOKUP`` resource groups), not once per VM."""
    places: dict[int, tuple[str, str, str]] = {}
    wanted: dict[tuple[str, str, str], list[VirtualMachine]] = {}
    for vm in vms:
        if vm.policy_name:
            places[vm.pk] = (vm.policy_resource_group or vm.resource_group_name, vm.policy_location, vm.policy_name)
        else:
            wanted.setdefault((vm.subscription_key, vm.resource_group, vm.location), []).append(vm)
    found: dict[tuple[str, str, str], list[JitPolicy]] = {}
    groups = sorted({group for _subscription, group, _location in wanted})
    for start in range(0, len(groups), _GROUPS_PER_LOOKUP):
        policies = JitPolicy.objects.filter(
            subscription_key__in={key[0] for key in wanted}, location__in={key[2] for key in wanted},
            resource_group__in=groups[start:start + _GROUPS_PER_LOOKUP],
        ).only("subscription_key", "resource_group", "location", "name", "resource_group_name")
        # The named policy (the first in the model's order), else all of them by name.
        policies = policies.filter(name__iexact=name) if name else policies.order_by("name", "pk")
        for policy in policies:
            found.setdefault((policy.subscription_key, policy.resource_group, policy.location), []).append(policy)
    for key, members in wanted.items():
        there = found.get(key, [])[:1] if name else found.get(key, [])
        for vm in members:
            policy = next((p for p in there if rules.name_fits(p.name, vm.name)), there[0] if there else None)
            if policy is not None:
                places[vm.pk] = (policy.resource_group_name, policy.location, policy.name)
            else:
                places[vm.pk] = (vm.resource_group_name, vm.location, name or rules.DEFAULT_POLICY_NAME)
    return places


def enable_name_too_long(vms: list[VirtualMachine], *, subject: str = "") -> dict[int, str]:
    """VM pk → why JIT cannot be enabled on it from the portal's pages and what to do, for each of ``vms`` whose name
    is too long for the policy ``policy_places`` gives it (``subject``: as ``rules.name_length_message``)."""
    places = policy_places(vms)
    return {vm.pk: rules.name_length_message(name, vm.name, group=group, location=location, subject=subject)
            for vm in vms for group, location, name in [places[vm.pk]] if not rules.name_fits(name, vm.name)}


def policy_names_too_long(vms: list[VirtualMachine]) -> dict[int, str]:
    """VM pk → the name of the JIT policy ``policy_places`` gives it, for each of ``vms`` whose name is too long for
    it (as ``enable_name_too_long``, one query for all: the inventory's rows)."""
    places = policy_places(vms)
    return {vm.pk: name for vm in vms for _group, _location, name in [places[vm.pk]]
            if not rules.name_fits(name, vm.name)}


def name_too_long_condition() -> Q:
    """``enable_name_too_long`` as a condition on VMs (for a query over many, never read row by row): its own policy's
    name, else every policy name of its resource group and location, else ``default``, is too long with its name."""
    room = rules.MAX_POLICY_AND_VM_NAME - Length(OuterRef("name"))
    there = JitPolicy.objects.filter(subscription_key=OuterRef("subscription_key"),
                                     resource_group=OuterRef("resource_group"), location=OuterRef("location"))
    fitting = there.annotate(length=Length("name")).filter(length__lte=room)
    default_too_long = GreaterThan(Length("name"), rules.MAX_POLICY_AND_VM_NAME - len(rules.DEFAULT_POLICY_NAME))
    unnamed = Q(policy_name="") & ~Q(Exists(fitting)) & (Q(Exists(there)) | Q(default_too_long))
    own = ~Q(policy_name="") & Q(GreaterThan(Length("name") + Length("policy_name"), rules.MAX_POLICY_AND_VM_NAME))
    return unnamed | own


def _names_too_long(queryset: QuerySet[VirtualMachine]) -> str:
    their = "their" if queryset.order_by().count() != 1 else "its"
    return (f"{their} {'names are' if their == 'their' else 'name is'} too long for the JIT policy of {their} "
            f"resource group and location (Azure allows at most {rules.MAX_POLICY_AND_VM_NAME} characters for the "
            "policy name and the VM name together); Enable JIT on a VM's own page says what to do.")


def enable_blocked_message(name: str, kind: str) -> str:
    """Why the VM ``name`` (or "it") may not be enabled now, its change of ``kind`` still pending."""
    if kind == PolicyChange.Kind.REMOVE:
        return f"JIT is being removed from {name} (not applied in Azure yet); enable it again once that is done."
    return (f"JIT is already being enabled on {name} (saved, not applied in Azure yet); to change the ports it "
            "gets, edit its JIT settings (Enable JIT with custom settings… on its page).")


def jit_unavailable_reason(vm: VirtualMachine) -> str:
    """Why JIT cannot be enabled on or edited for ``vm`` (Defender for Servers Plan 2 off on its subscription, or a VM
    JIT does not support), or "" when it can."""
    if vm.subscription.defender_missing:
        return vm.subscription.defender_missing_message
    if vm.state == VmState.UNSUPPORTED:
        return f"{vm.name} does not support JIT: {vm.unsupported_message}"
    return ""


def may_edit_policy(user, vm: VirtualMachine) -> bool:
    """Policy admins at the VM's scope (JIT policy write and VM write) may change its JIT settings."""
    return authz.has_permission(user, JIT_POLICY_WRITE, vm.resource_id) and authz.has_permission(
        user, "Microsoft.Compute/virtualMachines/write", vm.resource_id)


def subscription_list(user) -> QuerySet[Subscription]:
    """Subscriptions ``user`` may manage (subscription-scope settings grants)."""
    return authz.restrict(Subscription.objects.all(), user, SETTINGS_WRITE)


def manages_whole_subscriptions(user) -> bool:
    """Whether ``user`` may register and manage subscriptions: settings at a whole subscription (or everywhere), not
    only at resource groups or VMs."""
    scopes = authz.permitted_scopes(user, SETTINGS_WRITE)
    return authz.EVERYWHERE in scopes or any(s.kind == ScopeKind.SUBSCRIPTION for s in valid_scopes(scopes))


def subscription_get(user, pk: int) -> Subscription:
    return authz.get_for_user_or_404(Subscription.objects.all(), user, SETTINGS_WRITE, pk=pk)


def syncable_subscriptions(user) -> list[Subscription]:
    """Enabled subscriptions where ``user`` holds JIT policy write at some scope (they may ask for a sync)."""
    scopes = authz.permitted_scopes(user, JIT_POLICY_WRITE)
    subs = list(Subscription.objects.filter(enabled=True))
    if authz.EVERYWHERE in scopes:
        return subs
    wanted = {s.lower().split("/")[2] for s in scopes if s.lower().startswith("/subscriptions/")}
    return [s for s in subs if s.subscription_id in wanted]


def visible_subscriptions(user) -> list[Subscription]:
    """Subscriptions with at least one scope of ``user``'s VM read grants (banners, filters)."""
    scopes = authz.permitted_scopes(user, VM_READ)
    subs = list(Subscription.objects.all())
    if authz.EVERYWHERE in scopes:
        return subs
    wanted = {s.lower().split("/")[2] for s in scopes if s.lower().startswith("/subscriptions/")}
    return [s for s in subs if s.subscription_id in wanted]


class SyncRuns(list):
    """Sync runs, and whether any is still queued or running (the page then polls)."""

    @property
    def pending(self) -> bool:
        return any(not run.done for run in self)


def latest_sync_runs(user, subscriptions: list[Subscription], action: str = VM_READ) -> SyncRuns:
    """The newest sync run of each subscription where ``user`` holds ``action`` on the whole subscription (a run
    counts and reports on all of it), one query per subscription, a handful at most."""
    runs = SyncRuns()
    for subscription in subscriptions:
        if not authz.has_permission(user, action, subscription.scope_id):
            continue
        run = SyncRun.objects.filter(subscription=subscription).order_by("-created_at", "-id").first()
        if run is not None:
            run.subscription = subscription
            runs.append(run)
    return runs
