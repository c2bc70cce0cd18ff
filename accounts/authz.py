"""The one authorization API: may this user perform action A on resource R?

Every view, form, API endpoint, CSV export and task asks here. Grants are computed from the current
role mappings and the claims of the user's latest sign-in, once per request (cached on the user object,
which Django loads afresh for every request), so a mapping edit or a new sign-in takes effect at once.
Break-glass superusers may do everything.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Model, Q, QuerySet
from django.http import Http404

from accounts.roles import ROLES, Role
from accounts.scopes import Scope, minimal_scopes, scope_contains, valid_scopes

EVERYWHERE = "/"
_CACHE_ATTRIBUTE = "_jitportal_grants"


@dataclass(frozen=True)
class Grant:
    """A portal role at a scope, and the mapping and claim it came from."""

    role: Role
    scope: str
    mapping_id: int | None
    source_kind: str
    source_value: str
    tenant_id: str = ""

    def allows(self, action: str, resource_id: str) -> bool:
        return self.role.allows(action) and scope_contains(self.scope, resource_id)


def tenant_allowed(tenant_id: str) -> bool:
    """Whether the portal accepts sign-ins from ``tenant_id`` now (``ENTRA_ALLOWED_TENANTS``)."""
    return tenant_id.lower() in {t.lower() for t in settings.ENTRA_ALLOWED_TENANTS}


def _is_active_user(user) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and user.is_active)


def _claims(user):
    """The user's stored sign-in claims (``None``: never signed in with Entra ID): loaded with the user where the
    backend did so (``EntraBackend.get_user``), else one query."""
    from accounts.models import SignInClaims

    descriptor = user.__class__.sign_in_claims  # not type(): request.user is a lazy proxy
    if descriptor.is_cached(user):
        return getattr(user, "sign_in_claims", None)
    return SignInClaims.objects.filter(user_id=user.pk).first()


def compute_grants(user) -> list[Grant]:
    """The user's grants from the mappings that match their stored claims (one or two queries, not cached)."""
    from accounts.models import RoleMapping

    if not _is_active_user(user):
        return []
    claims = _claims(user)
    if claims is None or not tenant_allowed(claims.tenant_id):
        return []  # never signed in with Entra ID, or their tenant was taken off the allowed list since
    app_roles = [str(v) for v in claims.app_roles if v]
    groups = [str(v).lower() for v in claims.groups if v]
    matching = Q(source_kind=RoleMapping.SourceKind.APP_ROLE, source_value__in=app_roles) | Q(
        source_kind=RoleMapping.SourceKind.GROUP, source_value__in=groups
    )
    tenant = Q(tenant_id="") | Q(tenant_id__iexact=claims.tenant_id)
    return grants_from(claims, RoleMapping.objects.filter(matching, tenant).order_by("pk"))


def grants_from(claims, mappings) -> list[Grant]:
    """The grants stored sign-in ``claims`` earn from ``mappings`` (those ``compute_grants`` selects, in that
    order: an app role or group the claims name, for any tenant or theirs), without a query."""
    from accounts.models import RoleMapping

    if claims is None or not tenant_allowed(claims.tenant_id):
        return []
    app_roles = {str(v) for v in claims.app_roles or [] if v}
    groups = {str(v).lower() for v in claims.groups or [] if v}
    tenant = claims.tenant_id.lower()
    grants = []
    for mapping in sorted(mappings, key=lambda m: m.pk):
        claimed = {RoleMapping.SourceKind.APP_ROLE: app_roles, RoleMapping.SourceKind.GROUP: groups}.get(
            mapping.source_kind, ())
        role = ROLES.get(mapping.role)
        if role is None or mapping.source_value not in claimed or mapping.tenant_id.lower() not in ("", tenant):
            continue
        grants.append(Grant(role, mapping.scope, mapping.pk, mapping.source_kind, mapping.source_value,
                            mapping.tenant_id))
    return grants


def prime_grants(users: list, *, mappings: list | None = None, claims: dict | None = None) -> None:
    """Work out the grants of many ``users`` at once, as ``grants_for`` would one by one (two queries each), into
    the same per-request cache: one query for every role mapping unless given as ``mappings``, one for the users'
    sign-in claims unless given as ``claims`` (user pk → claims, with their tenant, app roles and groups)."""
    from accounts.models import RoleMapping, SignInClaims

    users = [user for user in users if _is_active_user(user) and getattr(user, _CACHE_ATTRIBUTE, None) is None]
    if not users:
        return
    if claims is None:
        claims = {c.user_id: c for c in SignInClaims.objects.filter(user_id__in=[user.pk for user in users])
                  .only("user_id", "tenant_id", "app_roles", "groups")}
    if mappings is None:
        mappings = list(RoleMapping.objects.all())
    for user in users:
        setattr(user, _CACHE_ATTRIBUTE, grants_from(claims.get(user.pk), mappings))


def grants_for(user) -> list[Grant]:
    """The user's grants, computed once per user object (that is, once per request)."""
    if not _is_active_user(user):
        return []
    cached = getattr(user, _CACHE_ATTRIBUTE, None)
    if cached is None:
        cached = compute_grants(user)
        setattr(user, _CACHE_ATTRIBUTE, cached)
    return cached


def forget_grants(user) -> None:
    """Drop the per-request cache, claims included (after the user's claims or mappings changed within one
    request)."""
    if user is None:
        return
    if hasattr(user, _CACHE_ATTRIBUTE):
        delattr(user, _CACHE_ATTRIBUTE)
    relation = getattr(user.__class__, "sign_in_claims", None)
    if relation is not None and relation.is_cached(user):
        relation.related.delete_cached_value(user)


def is_superuser(user) -> bool:
    return _is_active_user(user) and bool(user.is_superuser)


def has_permission(user, action: str, resource_id: str) -> bool:
    """Whether ``user`` may perform ``action`` on the resource (or scope) ``resource_id``."""
    if not _is_active_user(user):
        return False
    if user.is_superuser:
        return True
    return any(grant.allows(action, resource_id) for grant in grants_for(user))


def permitted_scopes(user, action: str, *also: str) -> list[str]:
    """The scopes at which ``user`` may perform ``action`` (or one of ``also``; ``["/"]`` means everywhere),
    smallest list."""
    if not _is_active_user(user):
        return []
    if user.is_superuser:
        return [EVERYWHERE]
    actions = (action, *also)
    return minimal_scopes([g.scope for g in grants_for(user) if any(g.role.allows(a) for a in actions)])


def holds_anywhere(user, action: str) -> bool:
    """Whether ``user`` may perform ``action`` at some scope (list pages, navigation)."""
    return bool(permitted_scopes(user, action))


def _scope_q(parsed: Scope, resource_id_field: str | None, subscription_field: str | None,
             resource_group_field: str | None) -> Q:
    if subscription_field and (resource_group_field or not parsed.resource_group) and not parsed.vm_name:
        # Those fields hold lower case: plain equality, which their indexes serve (PostgreSQL's case-insensitive
        # comparison, UPPER() on both sides, reads every row).
        q = Q(**{subscription_field: parsed.subscription_id.lower()})
        if parsed.resource_group:
            q &= Q(**{resource_group_field: parsed.resource_group.lower()})
        return q
    if not resource_id_field:
        raise ValueError(f"restrict() needs a resource_id_field to filter at {parsed.kind} scope")
    if not parsed.id.isascii():
        # In any case as ``scope_contains``: SQLite's LIKE folds ASCII only, its REGEXP is Python's, which folds every
        # letter (a resource group's RG-MÜNCHEN too); PostgreSQL folds them all either way.
        return Q(**{f"{resource_id_field}__iregex": rf"\A{re.escape(parsed.id)}(/|\Z)"})
    return Q(**{f"{resource_id_field}__iexact": parsed.id}) | Q(
        **{f"{resource_id_field}__istartswith": parsed.id + "/"}
    )


def restrict(queryset: QuerySet, user, action: str, *also: str, resource_id_field: str | None = None,
             subscription_field: str | None = None, resource_group_field: str | None = None) -> QuerySet:
    """Only the rows of ``queryset`` on which ``user`` may perform ``action`` (or one of ``also``), filtered in the
    database.

    A row's place is read from ``subscription_field``/``resource_group_field`` (equality; both hold lower case, as
    every model stores them) when given, and otherwise from its ARM id in ``resource_id_field`` (prefix, any case).
    Without arguments the model's ``AUTHZ_FIELDS`` dict names the fields.
    """
    if not any((resource_id_field, subscription_field, resource_group_field)):
        fields = getattr(queryset.model, "AUTHZ_FIELDS", None)
        if not fields:
            raise ValueError(f"{queryset.model.__name__} declares no AUTHZ_FIELDS; name the fields")
        resource_id_field = fields.get("resource_id_field")
        subscription_field = fields.get("subscription_field")
        resource_group_field = fields.get("resource_group_field")
    scopes = permitted_scopes(user, action, *also)
    if EVERYWHERE in scopes:
        return queryset.all()
    condition = Q()
    for parsed in valid_scopes(scopes):  # a malformed mapping grants nothing
        condition |= _scope_q(parsed, resource_id_field, subscription_field, resource_group_field)
    if not condition:
        return queryset.none()
    return queryset.filter(condition)


def get_for_user_or_404(queryset: QuerySet, user, action: str, **lookup) -> Model:
    """The one row matching ``lookup`` that ``user`` may perform ``action`` on, else ``Http404``.

    Field names for ``restrict`` come from the model's ``AUTHZ_FIELDS``; an object out of scope looks
    exactly like one that does not exist.
    """
    allowed = restrict(queryset, user, action)
    try:
        return allowed.get(**lookup)
    except (queryset.model.DoesNotExist, queryset.model.MultipleObjectsReturned, ValueError, TypeError) as exc:
        raise Http404("No such object.") from exc
