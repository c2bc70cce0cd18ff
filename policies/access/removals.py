"""Who removed the JIT rule an open port went through: a port Azure revoked while it was open, for no newer request
on it, is matched with the portal's write of its VM's JIT policy that left the port out (the audit row
``policy.<kind>_applied`` of its VM, after the port opened and at or before it was found closed: the first such one),
or, when the portal wrote none, with the sync's finding that the port left the policy in Azure itself (the VM's
ports as Azure lists them no longer have it while the portal's baseline still does). One query for any number of
ports and VMs."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils.html import format_html
from django.utils.safestring import SafeString

from jitportal.lib.times import utc_iso, zoned_time

from .models import AccessRequest, AccessRequestPort, PortState

APPLIED = ("policy.enable_applied", "policy.save_applied", "policy.remove_applied")
# A port's ``azure_status_reason`` (with status ``Revoked``) once its JIT policy no longer exists in Azure (a read
# answered NotFound): removing JIT from the policy's last VM deletes the policy, and Azure its rules and requests with
# it, so Azure has no record left to give a reason. The portal's word, not one of Azure's reasons.
POLICY_GONE = "PolicyDeleted"


def person_label(user) -> str:
    """A user as the request page names them: their name and user name, or the user name alone."""
    return f"{user.display_name} ({user.username})" if user.display_name else user.username


@dataclass(frozen=True)
class Removal:
    """JIT (``whole``) or the ports ``numbers`` removed from VM ``vm``: by ``by`` (a person, ``""`` for the portal
    itself) at ``at`` through the portal, or in Azure itself (``at`` None: found by the sync, no one to name)."""

    vm: str
    numbers: tuple[int, ...]
    whole: bool
    by: str = ""
    at: datetime | None = None

    def _parts(self) -> tuple[str, list]:
        """The sentence as a ``format_html`` format and its arguments (the time last, when there is one)."""
        numbers = [str(n) for n in self.numbers]
        whole = self.whole or not numbers
        ports = "" if whole else f"port {numbers[0]}" if len(numbers) == 1 else (
            f"ports {', '.join(numbers[:-1])} and {numbers[-1]}")
        if self.at is None:
            if whole:
                return "JIT was removed from {} in Azure itself, outside the portal", [self.vm]
            verb = "was" if len(numbers) == 1 else "were"
            return f"{ports} {verb} removed from the JIT policy of {{}} in Azure itself, outside the portal", [self.vm]
        what = "JIT from {}" if whole else f"{ports} from the JIT policy of {{}}"
        if self.by:
            return f"{{}} removed {what} at {{}}", [self.by, self.vm]
        return f"the portal removed {what} at {{}}", [self.vm]

    @property
    def html(self) -> SafeString:
        """The sentence for a page (names escaped, the time in the portal's zone)."""
        text, args = self._parts()
        return format_html(text, *args, *([zoned_time(self.at)] if self.at else []))

    def text(self) -> str:
        """The sentence for an e-mail or a chat card: plain text, the time in UTC."""
        text, args = self._parts()
        when = [self.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")] if self.at else []
        return text.format(*args, *when)

    def as_detail(self) -> dict:
        """As a notification's ``detail["removed"]`` holds it (JSON)."""
        return {"vm": self.vm, "ports": list(self.numbers), "whole": self.whole, "by": self.by,
                "at": utc_iso(self.at)}

    @classmethod
    def from_detail(cls, value: dict) -> Removal:
        """From ``as_detail``'s JSON; a port or a time not as it writes them is left out (the sentence then names
        no time, as for a removal in Azure itself)."""
        try:
            at = datetime.fromisoformat(value.get("at") or "")
        except (TypeError, ValueError):
            at = None
        numbers = value.get("ports")
        return cls(vm=str(value.get("vm") or ""), whole=bool(value.get("whole")), by=str(value.get("by") or ""),
                   numbers=tuple(sorted(_numbers([{"number": n} for n in numbers] if isinstance(numbers, list)
                                                 else None))),
                   at=at if at is None or at.tzinfo else at.replace(tzinfo=UTC))


def revoked_for_removal(request: AccessRequest, port: AccessRequestPort) -> bool:
    """Whether Azure revoked ``port`` while it was open, for no newer request on it and not for the portal's Close
    now (ports the request's close ended are not)."""
    return (port.state == PortState.CLOSED and port.opened_at is not None and port.finished_at is not None
            and port.azure_status.lower() == "revoked"
            and port.azure_status_reason not in ("NewerRequestInitiated", "Expired")
            and (request.closed_at is None or port.finished_at < request.closed_at))


def _until(port: AccessRequestPort) -> datetime:
    """The end of the time in which ``port``'s removal is looked for: when it was found closed, else (still open)
    its planned end."""
    return port.finished_at or port.end_at


def removals_of(ports: Iterable[AccessRequestPort]) -> dict[int, Removal]:
    """Port id → what removed it, for ``ports`` (revoked ones: ``revoked_for_removal``, or open ones whose policy is
    gone, looked for up to their end; each with its ``request_vm`` and that row's ``vm`` loaded) whose removal is
    known: at most one query. A port with no opening time (it never opened) has none."""
    ports = [port for port in ports if port.opened_at is not None]
    if not ports:
        return {}
    from audit.models import AuditEvent

    by_vm: dict[str, list] = {}
    rows = (AuditEvent.objects.filter(
        action__in=APPLIED, target_type="vm",
        resource_id__in={p.request_vm.vm_arm_id.lower() for p in ports},
        occurred_at__gte=min(p.opened_at for p in ports), occurred_at__lte=max(_until(p) for p in ports))
        .select_related("actor").order_by("occurred_at", "id"))
    for event in rows:
        by_vm.setdefault(event.resource_id, []).append(event)
    found: dict[tuple, list[AccessRequestPort]] = {}
    for port in ports:
        key = _cause(port, by_vm.get(port.request_vm.vm_arm_id.lower(), []))
        if key is not None:
            found.setdefault(key, []).append(port)
    removals: dict[int, Removal] = {}
    for (_vm_row, whole, by, at), group in found.items():
        removal = Removal(vm=group[0].request_vm.vm_name, numbers=tuple(sorted(p.number for p in group)),
                          whole=whole, by=by, at=at)
        removals.update((p.pk, removal) for p in group)
    return removals


def _numbers(ports: object) -> set[int]:
    """The port numbers of a list of Azure's port dicts (as stored; anything else names none)."""
    numbers: set[int] = set()
    for port in ports if isinstance(ports, list) else ():
        try:
            numbers.add(int(port["number"]))
        except (KeyError, TypeError, ValueError):
            continue
    return numbers


def _cause(port: AccessRequestPort, events: list) -> tuple | None:
    """(VM row, whole, by, at) of what removed ``port``: the first portal write of its VM that left it out while it
    was open, else the sync's finding that Azure dropped it; ``None`` when neither is known."""
    for event in events:
        after = event.after.get("ports") if isinstance(event.after, dict) else None
        if port.opened_at <= event.occurred_at <= _until(port) and port.number not in _numbers(after):
            by = person_label(event.actor) if event.actor is not None else (
                event.actor_label if event.actor_id is not None else "")
            return port.request_vm_id, not after, by, event.occurred_at
    vm = port.request_vm.vm
    if port.number not in _numbers(vm.ports) and port.number in _numbers(vm.portal_ports):
        return port.request_vm_id, not vm.ports, "", None
    return None
