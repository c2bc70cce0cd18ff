"""Writes of the accounts app: recording a sign-in, and managing role mappings."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts import authz, graph
from accounts.models import RoleMapping, SignInClaims, User
from accounts.roles import SETTINGS_WRITE
from accounts.scopes import normalize_scope, parse_scope
from audit.services import audit_record
from jitportal.lib.text import NUL_STAND_IN, without_nul


class SignInClaimsError(ValueError):
    """The ID token lacks what the portal needs to know who signed in."""


class SignInAccountDisabled(Exception):
    """The ID token names a portal user an administrator deactivated: nothing of the sign-in is recorded."""


MAX_ID = 64  # ``User.entra_tenant_id``, ``entra_object_id``


def _id_claim(value) -> str:
    """A ``tid`` or ``oid`` claim as stored (lower case), or ``""`` when it is not one Entra ID issues (a GUID: at
    most ``MAX_ID`` printable characters)."""
    text = str(value or "").lower()
    return text if len(text) <= MAX_ID and text.isprintable() and NUL_STAND_IN not in text else ""


def _strings(values: Iterable | None) -> list[str]:
    if not isinstance(values, list | tuple):
        return []
    return sorted({without_nul(v) for v in values if isinstance(v, str) and v})


def _free_username(preferred: str, *, tenant_id: str, object_id: str) -> str:
    username = preferred[:150]
    taken = get_user_model().objects.filter(username=username).exclude(
        entra_tenant_id=tenant_id, entra_object_id=object_id
    )
    if taken.exists():
        username = f"{preferred[:140]}#{object_id[:8]}"
    return username


def _groups_overage(claims: dict) -> bool:
    """Whether the token says its user is in too many groups to list (Entra ID then leaves ``groups`` out)."""
    names = claims.get("_claim_names")
    flag = claims.get("hasgroups")  # true in a token (``"true"`` from some issuers); ``"false"`` is not overage
    return flag is True or (isinstance(flag, str) and flag.strip().lower() == "true") or (
        isinstance(names, dict) and "groups" in names)


def user_sign_in_record(*, claims: dict, at: datetime | None = None, client_ip: str | None = None) -> User:
    """Create or update the user an Entra ID token names, and store the claims that grant access.

    The user is found by (tenant, object id); name, e-mail and user name follow the token. App roles and
    groups replace the previous sign-in's, so what Entra ID took away is gone from now on. A deactivated user
    raises ``SignInAccountDisabled`` before anything is written (no fresh claims, no "signed in" audit row).

    When the token says the user is in too many groups to list (group overage), the groups are read from
    Microsoft Graph (``accounts.graph``) first, outside any transaction. If Graph cannot be reached or refuses,
    the sign-in still counts, with no groups (app-role mappings only) and the reason kept for My access.
    """
    if not claims.get("tid") or not claims.get("oid"):
        raise SignInClaimsError("The sign-in token does not say which tenant and user it is for (tid, oid).")
    tenant_id, object_id = _id_claim(claims["tid"]), _id_claim(claims["oid"])
    if not tenant_id or not object_id:
        raise SignInClaimsError("The sign-in token's tenant and user ids (tid, oid) are not ones Entra ID issues.")
    groups, groups_error = [g.lower() for g in _strings(claims.get("groups"))], ""
    overage = _groups_overage(claims)
    deactivated = get_user_model().objects.filter(entra_tenant_id=tenant_id, entra_object_id=object_id,
                                                  is_active=False)
    if overage and not deactivated.exists():
        try:
            groups = graph.user_group_ids(tenant_id=tenant_id, object_id=object_id)
        except graph.GraphUnavailable as exc:
            groups, groups_error = [], exc.reason
    return _user_sign_in_save(claims=claims, tenant_id=tenant_id, object_id=object_id, groups=groups,
                              overage=overage, groups_error=groups_error, at=at, client_ip=client_ip)


@transaction.atomic
def _user_sign_in_save(*, claims: dict, tenant_id: str, object_id: str, groups: list[str], overage: bool,
                       groups_error: str, at: datetime | None, client_ip: str | None) -> User:
    preferred = without_nul(str(claims.get("preferred_username") or claims.get("upn") or claims.get("email")
                                or object_id))
    display_name = without_nul(str(claims.get("name") or preferred))[:255]
    email = without_nul(str(claims.get("email") or (preferred if "@" in preferred else "")))[:254]

    user_model = get_user_model()
    # FOR NO KEY UPDATE: rows naming the user (an access event's actor) may still be stored meanwhile; FOR UPDATE
    # would stop them, and a transaction storing one after its audit row would deadlock with this sign-in's.
    user = (
        user_model.objects.select_for_update(no_key=True)
        .filter(entra_tenant_id=tenant_id, entra_object_id=object_id)
        .first()
    )
    if user is None:
        user = user_model(entra_tenant_id=tenant_id, entra_object_id=object_id)
        user.set_unusable_password()
    elif not user.is_active:
        raise SignInAccountDisabled("Your portal account is disabled. Ask the portal's administrators.")
    user.username = _free_username(preferred, tenant_id=tenant_id, object_id=object_id)
    user.display_name = display_name
    user.email = email
    user.save()

    stored = {
        "tenant_id": tenant_id,
        "app_roles": _strings(claims.get("roles")),
        "groups": groups,
        # Entra ID leaves the groups out when there are too many (> 200) and says so instead.
        "groups_overage": overage,
        "groups_error": groups_error,
    }
    SignInClaims.objects.update_or_create(user=user, defaults={**stored, "signed_in_at": at or timezone.now()})
    authz.forget_grants(user)  # the grants and claims this user object may hold are the previous sign-in's
    audited = stored
    if overage:  # possibly thousands of groups: the audit row names those a group mapping names, and counts all
        mapped = set(RoleMapping.objects.filter(source_kind=RoleMapping.SourceKind.GROUP)
                     .values_list("source_value", flat=True))
        audited = {**stored, "groups": [g for g in groups if g in mapped], "groups_from_graph": len(groups)}
    audit_record(actor=user, action="user.sign_in", target_type="user", target_id=str(user.pk),
                 target_label=user.username, after=audited, client_ip=client_ip)
    return user


def _mapping_state(mapping: RoleMapping) -> dict:
    return {
        "source_kind": mapping.source_kind,
        "source_value": mapping.source_value,
        "tenant_id": mapping.tenant_id,
        "role": mapping.role,
        "scope": mapping.scope,
        "description": mapping.description,
    }


def _audit_mapping(actor: User, action: str, mapping: RoleMapping, *, pk: int, before: dict | None,
                   after: dict | None, client_ip: str | None) -> None:
    place = parse_scope(mapping.scope)
    audit_record(
        actor=actor, action=action, target_type="role_mapping", target_id=str(pk), target_label=str(mapping),
        subscription_id=place.subscription_id, resource_group=(place.resource_group or "").lower(),
        resource_id=place.id.lower() if place.vm_name else "", before=before, after=after, client_ip=client_ip,
    )


def _require_mapping_admin(actor: User, scope: str) -> None:
    """Only admins at a mapping's scope (settings write there) may create, change or delete it."""
    if not authz.has_permission(actor, SETTINGS_WRITE, scope):
        raise PermissionDenied("You may only map roles at scopes you administer.")


def _clean_mapping_fields(source_kind: str, source_value: str, tenant_id: str, scope: str) -> dict:
    value = source_value.strip()
    if source_kind == RoleMapping.SourceKind.GROUP:
        value = value.lower()
    return {
        "source_kind": source_kind,
        "source_value": value,
        "tenant_id": tenant_id.strip().lower(),
        "scope": normalize_scope(scope),
    }


@transaction.atomic
def role_mapping_create(
    *, actor: User, source_kind: str, source_value: str, role: str, scope: str, tenant_id: str = "",
    description: str = "", client_ip: str | None = None,
) -> RoleMapping:
    """Create a mapping from an app role or group to a portal role at a scope ``actor`` administers."""
    fields = _clean_mapping_fields(source_kind, source_value, tenant_id, scope)
    _require_mapping_admin(actor, fields["scope"])
    mapping = RoleMapping.objects.create(
        **fields,
        role=role,
        description=description.strip(),
        created_by=actor,
        updated_by=actor,
    )
    _audit_mapping(actor, "role_mapping.create", mapping, pk=mapping.pk, before=None, after=_mapping_state(mapping),
                   client_ip=client_ip)
    return mapping


@transaction.atomic
def role_mapping_update(
    *, actor: User, mapping: RoleMapping, source_kind: str, source_value: str, role: str, scope: str,
    tenant_id: str = "", description: str = "", client_ip: str | None = None,
) -> RoleMapping:
    """Change a mapping ``actor`` administers, at its stored scope and its new one; users it no longer matches lose
    its role at their next request."""
    stored = RoleMapping.objects.select_for_update().get(pk=mapping.pk)
    fields = _clean_mapping_fields(source_kind, source_value, tenant_id, scope)
    _require_mapping_admin(actor, stored.scope)
    _require_mapping_admin(actor, fields["scope"])
    before = _mapping_state(stored)
    for field, value in fields.items():
        setattr(mapping, field, value)
    mapping.role = role
    mapping.description = description.strip()
    mapping.updated_by = actor
    mapping.save()
    _audit_mapping(actor, "role_mapping.update", mapping, pk=mapping.pk, before=before,
                   after=_mapping_state(mapping), client_ip=client_ip)
    return mapping


@transaction.atomic
def role_mapping_delete(*, actor: User, mapping: RoleMapping, client_ip: str | None = None) -> None:
    """Delete a mapping ``actor`` administers (at its stored scope); the users it granted lose the role at their next
    request."""
    stored = RoleMapping.objects.select_for_update().filter(pk=mapping.pk).first()
    if stored is None:
        return  # deleted meanwhile
    _require_mapping_admin(actor, stored.scope)
    pk, before = stored.pk, _mapping_state(stored)
    mapping.delete()
    _audit_mapping(actor, "role_mapping.delete", stored, pk=pk, before=before, after=None, client_ip=client_ip)
