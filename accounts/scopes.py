"""Scopes are ARM resource ids: a subscription, a resource group or one virtual machine.

A grant at a scope covers every resource under it. ARM ids compare case-insensitively, and containment
is a prefix match that stops at a segment boundary (``/subscriptions/a`` does not contain
``/subscriptions/ab``).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_RG = r"[-\w._()]{0,89}[-\w_()]"
_VM = r"[-\w._]{1,64}"
_SCOPE_RE = re.compile(
    rf"^/subscriptions/(?P<sub>{_GUID})"
    rf"(?:/resourceGroups/(?P<rg>{_RG})"
    rf"(?:/providers/Microsoft\.Compute/virtualMachines/(?P<vm>{_VM}))?)?/?$",
    re.IGNORECASE,
)


class ScopeKind(StrEnum):
    SUBSCRIPTION = "subscription"
    RESOURCE_GROUP = "resource group"
    VIRTUAL_MACHINE = "virtual machine"


class InvalidScope(ValueError):
    """The text is not a subscription, resource group or virtual machine id."""


@dataclass(frozen=True)
class Scope:
    """A parsed scope with its canonical text."""

    subscription_id: str
    resource_group: str | None = None
    vm_name: str | None = None

    @property
    def kind(self) -> ScopeKind:
        if self.vm_name:
            return ScopeKind.VIRTUAL_MACHINE
        if self.resource_group:
            return ScopeKind.RESOURCE_GROUP
        return ScopeKind.SUBSCRIPTION

    @property
    def id(self) -> str:
        text = f"/subscriptions/{self.subscription_id}"
        if self.resource_group:
            text += f"/resourceGroups/{self.resource_group}"
        if self.vm_name:
            text += f"/providers/Microsoft.Compute/virtualMachines/{self.vm_name}"
        return text

    def __str__(self) -> str:
        return self.id


def parse_scope(text: str) -> Scope:
    """Parse a scope, normalising the subscription id to lower case and the provider segments' spelling."""
    match = _SCOPE_RE.match((text or "").strip())
    if not match:
        raise InvalidScope(
            "A scope is /subscriptions/{id}, /subscriptions/{id}/resourceGroups/{name}, or "
            "/subscriptions/{id}/resourceGroups/{name}/providers/Microsoft.Compute/virtualMachines/{name}."
        )
    return Scope(match["sub"].lower(), match["rg"], match["vm"])


def valid_scopes(texts: Iterable[str]) -> Iterator[Scope]:
    """The scopes among ``texts`` that parse, in order; the others are skipped (a malformed mapping grants
    nothing). ``"/"`` (everywhere) does not parse: callers check for it first."""
    for text in texts:
        try:
            yield parse_scope(text)
        except InvalidScope:
            continue


def normalize_scope(text: str) -> str:
    """The canonical text of a scope (raises ``InvalidScope``)."""
    return parse_scope(text).id


def scope_contains(outer: str, inner: str) -> bool:
    """Whether ``inner`` (any ARM resource id) lies at or under ``outer``."""
    outer_key = outer.rstrip("/").lower()
    inner_key = inner.rstrip("/").lower()
    if outer_key in ("", "/"):
        return True
    return inner_key == outer_key or inner_key.startswith(outer_key + "/")


def minimal_scopes(scopes: list[str]) -> list[str]:
    """Drop scopes already covered by another one in the list; keep the first spelling, sorted."""
    unique: dict[str, str] = {}
    for scope in scopes:
        unique.setdefault(scope.rstrip("/").lower() or "/", scope)
    kept = [
        text
        for key, text in unique.items()
        if not any(other != key and scope_contains(other, key) for other in unique)
    ]
    return sorted(kept, key=str.lower)
