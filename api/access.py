"""Who may call each API view: the same declarations (``accounts.access``) the pages use, checked by DRF.

Decorate every API view class with exactly one of ``api_public``, ``api_authenticated`` or
``api_requires(action, object_model=...)``. The class then carries the ``AccessRule`` the authorization
matrix reads, and ``RuleAccess`` enforces it after DRF has authenticated the caller (token or session):
without the action anywhere a list answers 403 and an object 404, as the pages do. Object views still load
their object through the selectors (``vm_get``, ``request_get``…), which check its own scope.
"""
from __future__ import annotations

from collections.abc import Callable

from rest_framework import exceptions
from rest_framework.permissions import AllowAny, BasePermission

from accounts import authz
from accounts.access import RULE_ATTRIBUTE, AccessRule, Audience


def _mark(cls: type, rule: AccessRule) -> type:
    setattr(cls, RULE_ATTRIBUTE, rule)
    if rule.audience is Audience.PUBLIC:
        cls.permission_classes = [AllowAny]
        cls.authentication_classes = []
    else:
        cls.permission_classes = [RuleAccess]
    return cls


def api_public(cls: type) -> type:
    """Anyone may call the view (the schema and the docs page)."""
    return _mark(cls, AccessRule(Audience.PUBLIC))


def api_authenticated(cls: type) -> type:
    """Any authenticated caller."""
    return _mark(cls, AccessRule(Audience.AUTHENTICATED))


def api_requires(action: str, *also: str, object_model: type | None = None, owner_field: str | None = None
                 ) -> Callable[[type], type]:
    """Callers holding ``action`` (or one of ``also``) at some scope, or owning the object (``owner_field``, as
    ``accounts.access.requires``); object views then check the object's own scope."""
    def decorator(cls: type) -> type:
        return _mark(cls, AccessRule(Audience.ACTION, action, object_model, also, owner_field))

    return decorator


class RuleAccess(BasePermission):
    """Enforces the view's ``AccessRule`` for the authenticated caller."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            raise exceptions.NotAuthenticated("Authenticate with 'Authorization: Bearer <token>'.")
        rule: AccessRule = getattr(view, RULE_ATTRIBUTE)
        if rule.audience is Audience.ACTION and not any(authz.holds_anywhere(user, a) for a in rule.actions):
            if rule.owned_by(user, view.kwargs.get("pk")):
                return True
            if rule.on_object:
                raise exceptions.NotFound()  # DRF's "Not found.", as every API 404 says
            raise exceptions.PermissionDenied(f"You need a role that allows {' or '.join(rule.actions)}.")
        return True
