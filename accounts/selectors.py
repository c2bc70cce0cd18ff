"""Reads of the accounts app, already restricted to what the user may see."""
from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q, QuerySet

from accounts import authz
from accounts.models import RoleMapping, SignInClaims
from accounts.roles import ROLES, SETTINGS_WRITE, Role
from accounts.scopes import InvalidScope, ScopeKind, parse_scope


def role_mapping_list(user) -> QuerySet[RoleMapping]:
    """The role mappings ``user`` administers: those at or under the scopes where they manage settings."""
    return authz.restrict(RoleMapping.objects.select_related("updated_by"), user, SETTINGS_WRITE)


@dataclass(frozen=True)
class AccessRow:
    """One line of "My access": a role at a scope and where it came from."""

    role: Role
    scope: str
    source: str
    mapping_description: str
    mapping_id: int | None


@dataclass(frozen=True)
class MyAccess:
    """The user's roles, scopes and their origins, and the claims of the latest sign-in: its group ids as the first
    few (``groups_shown``, those a role mapping gave roles for first) and the rest (``groups_more``)."""

    rows: list[AccessRow]
    claims: SignInClaims | None
    is_superuser: bool
    groups_shown: tuple[str, ...] = ()
    groups_more: tuple[str, ...] = ()


GROUPS_SHOWN = 5  # "My access" lists this many group ids, and the rest (up to thousands) folded away


def my_access(user) -> MyAccess:
    """What ``user`` may do, and why."""
    claims = SignInClaims.objects.filter(user_id=user.pk).first()
    descriptions = dict(
        RoleMapping.objects.filter(pk__in=[g.mapping_id for g in authz.grants_for(user)]).values_list(
            "pk", "description"
        )
    )
    rows = []
    for grant in authz.grants_for(user):
        kind = "app role" if grant.source_kind == RoleMapping.SourceKind.APP_ROLE else "group"
        tenant = f" (tenant {grant.tenant_id})" if grant.tenant_id else ""
        rows.append(
            AccessRow(
                role=grant.role,
                scope=grant.scope,
                source=f"Entra {kind} {grant.source_value}{tenant}",
                mapping_description=descriptions.get(grant.mapping_id, ""),
                mapping_id=grant.mapping_id,
            )
        )
    rows.sort(key=lambda r: (list(ROLES).index(r.role.name), r.scope.lower()))
    mapped = {g.source_value.lower() for g in authz.grants_for(user) if g.source_kind == RoleMapping.SourceKind.GROUP}
    groups = sorted(claims.groups if claims else [], key=lambda group: str(group).lower() not in mapped)
    return MyAccess(rows=rows, claims=claims, is_superuser=authz.is_superuser(user),
                    groups_shown=tuple(groups[:GROUPS_SHOWN]), groups_more=tuple(groups[GROUPS_SHOWN:]))


@dataclass(frozen=True)
class AccessContact:
    """Whom a user without a role should ask for access: ``PORTAL_ACCESS_CONTACT`` as written (``text``), else the
    names of the portal's administrators (``admins``, the first ``ADMINS_NAMED`` by name, and how many ``more``);
    neither when the portal has none."""

    text: str = ""
    admins: tuple[str, ...] = ()
    more: int = 0


ADMINS_NAMED = 5


def _subscription_wide(scope: str) -> bool:
    try:
        return parse_scope(scope).kind is ScopeKind.SUBSCRIPTION
    except InvalidScope:
        return False


def _naming_any(field: str, values: set[str]) -> Q | None:
    """A condition met by the stored claims whose JSON list ``field`` may name one of ``values`` (those that do, and
    a few others: the JSON text holds the value in quotes, in any case), for the database to narrow by; ``None`` when
    a value could be written otherwise in JSON (escaped: non-ASCII, quotes, backslashes), so every row is read."""
    condition = Q(pk__in=[])
    for value in values:
        written = json.dumps(value)
        if written[1:-1] != value:
            return None
        condition |= Q(**{f"{field}__icontains": written})
    return condition


def _tenant_of(user) -> str:
    """The Entra tenant ``user`` signs in from: their account's (set from the token's ``tid`` at every sign-in),
    else their latest sign-in's claims; empty for a user who never signed in with Entra ID."""
    tenant = getattr(user, "entra_tenant_id", "")
    if not tenant and getattr(user, "pk", None) is not None:
        tenant = SignInClaims.objects.filter(user_id=user.pk).values_list("tenant_id", flat=True).first() or ""
    return tenant.lower()


def no_role_contact(user) -> AccessContact | None:
    """Whom ``user`` should ask for a role (``access_contact``) when they hold none; ``None`` when they hold one."""
    return access_contact(user) if not user.is_superuser and not authz.grants_for(user) else None


def access_contact(user) -> AccessContact:
    """Whom ``user`` should ask for a role: the configured contact, or the active users of the same Entra tenant
    (break-glass accounts left out) who may map roles for a whole subscription by the claims of their latest
    sign-in; two queries however many mappings, reading only the claims of that tenant that name one of those
    mappings' app roles or groups. With several allowed tenants, an administrator of another tenant is never
    named: they cannot map the user's app roles or groups, and the user may not know them. A user whose tenant is
    unknown gets no names."""
    if settings.PORTAL_ACCESS_CONTACT:
        return AccessContact(text=settings.PORTAL_ACCESS_CONTACT)
    tenant = _tenant_of(user)
    if not tenant:
        return AccessContact()
    mappings = list(RoleMapping.objects.all())
    granting = [m for m in mappings if (role := ROLES.get(m.role)) and role.allows(SETTINGS_WRITE)
                and _subscription_wide(m.scope) and m.tenant_id.lower() in ("", tenant)]
    if not granting:
        return AccessContact()
    app_roles = {m.source_value for m in granting if m.source_kind == RoleMapping.SourceKind.APP_ROLE}
    groups = {m.source_value.lower() for m in granting if m.source_kind == RoleMapping.SourceKind.GROUP}
    naming = [_naming_any("app_roles", app_roles), _naming_any("groups", groups)]
    claims = SignInClaims.objects.select_related("user").filter(
        user__is_active=True, user__is_superuser=False, tenant_id__iexact=tenant)
    if None not in naming:
        claims = claims.filter(naming[0] | naming[1])
    candidates = {c.user_id: c for c in claims
                  if app_roles & {str(v) for v in c.app_roles or []}
                  or groups & {str(v).lower() for v in c.groups or []}}
    users = [c.user for c in candidates.values()]
    authz.prime_grants(users, mappings=mappings, claims=candidates)
    names = sorted({str(user) for user in users
                    if any(grant.role.allows(SETTINGS_WRITE) and _subscription_wide(grant.scope)
                           for grant in authz.grants_for(user))}, key=str.casefold)
    return AccessContact(admins=tuple(names[:ADMINS_NAMED]), more=max(len(names) - ADMINS_NAMED, 0))
