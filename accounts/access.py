"""Every URL declares who may open it; the authorization matrix test reads these declarations.

Decorate each view with exactly one of:

- ``@public`` — anyone, signed in or not (sign-in pages, the health check);
- ``@authenticated_only`` — any signed-in user (the dashboard, "My access", sign-out);
- ``@requires(action, *also)`` — a page for users who may perform ``action`` (or one of ``also``) at some scope;
  others get 403;
- ``@requires(action, object_model=Model)`` — one object's page: the view loads the object through
  ``accounts.authz.get_for_user_or_404``; a user without the action anywhere gets 404 too. The
  authorization matrix test makes an object of ``Model`` in and out of scope for each persona.
  ``owner_field="requester"`` also lets the object's owner through without the action (a requester whose role
  was taken away may still read and close their own request); the view's selector still decides what they see.
- ``@owner_only(object_model=Model, owner_field="user")`` — one object that only its owner may open, whatever
  their roles (a personal API token); anyone else, break-glass staff too, gets 404.

URL namespaces whose views belong to a framework (the Django admin) have one rule in
``NAMESPACE_RULES``. ``rule_for(callback, namespace)`` tells what applies to a resolved URL.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import wraps

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import Http404

from accounts import authz

RULE_ATTRIBUTE = "access_rule"


class Audience(StrEnum):
    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    ACTION = "action"
    OWNER = "owner"
    STAFF = "staff"


@dataclass(frozen=True)
class AccessRule:
    """Who may open a URL: an audience and, for ``ACTION``, the action (or ``also`` one of other actions), the
    model of an object page and the field naming the user who owns such an object (``owner_field``: they pass
    without the action)."""

    audience: Audience
    action: str | None = None
    object_model: type | None = None
    also: tuple[str, ...] = ()
    owner_field: str | None = None

    @property
    def on_object(self) -> bool:
        return self.object_model is not None

    @property
    def actions(self) -> tuple[str, ...]:
        """The actions of which the user must hold one (at some scope) to get through."""
        return (self.action, *self.also) if self.action else ()

    def owned_by(self, user, pk) -> bool:
        """Whether the object ``pk`` of ``object_model`` belongs to ``user`` (through ``owner_field``)."""
        if not (self.on_object and self.owner_field and getattr(user, "pk", None) is not None):
            return False
        if not isinstance(pk, int) or not 0 < pk < 2**63:
            return False
        return self.object_model._default_manager.filter(pk=pk, **{f"{self.owner_field}_id": user.pk}).exists()

    def __str__(self) -> str:
        if self.audience is Audience.OWNER:
            return "its owner only"
        if self.audience is Audience.ACTION:
            owner = " (or its owner)" if self.owner_field else ""
            return f"requires {' or '.join(self.actions)}{' on the object' if self.on_object else ''}{owner}"
        return str(self.audience)


def _mark(view: Callable, rule: AccessRule) -> Callable:
    setattr(view, RULE_ATTRIBUTE, rule)
    return view


def public(view: Callable) -> Callable:
    """Anyone may open the view, signed in or not."""
    return _mark(login_not_required(view), AccessRule(Audience.PUBLIC))


def authenticated_only(view: Callable) -> Callable:
    """Any signed-in user may open the view (``LoginRequiredMiddleware`` sends others to sign in)."""
    return _mark(view, AccessRule(Audience.AUTHENTICATED))


def requires(action: str, *also: str, object_model: type | None = None, owner_field: str | None = None
             ) -> Callable[[Callable], Callable]:
    """The user must hold ``action`` (or one of ``also``) at some scope, or own the object (``owner_field``); object
    views then check the object's own scope."""
    rule = AccessRule(Audience.ACTION, action, object_model, also, owner_field=owner_field)

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not any(authz.holds_anywhere(request.user, a) for a in rule.actions):
                if object_model is not None:
                    if rule.owned_by(request.user, kwargs.get("pk")):
                        return view(request, *args, **kwargs)
                    raise Http404("No such object.")
                raise PermissionDenied(f"You need a role that allows {' or '.join(rule.actions)}.")
            return view(request, *args, **kwargs)

        return _mark(wrapper, rule)

    return decorator


def owner_only(*, object_model: type, owner_field: str) -> Callable[[Callable], Callable]:
    """Only the signed-in user ``owner_field`` names may open the object; others get 404 (never a hint that it
    exists). The view still loads it through its selector."""
    rule = AccessRule(Audience.OWNER, object_model=object_model, owner_field=owner_field)

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not rule.owned_by(request.user, kwargs.get("pk")):
                raise Http404("No such object.")
            return view(request, *args, **kwargs)

        return _mark(wrapper, rule)

    return decorator


NAMESPACE_RULES: dict[str, AccessRule] = {
    # The Django admin checks is_staff and model permissions itself; only break-glass staff use it.
    "admin": AccessRule(Audience.STAFF),
}


def rule_for(callback: Callable, namespace: str | None = None) -> AccessRule | None:
    """The rule that applies to a resolved view, or ``None`` when it declares none."""
    rule = getattr(callback, RULE_ATTRIBUTE, None)
    if rule is None and getattr(callback, "view_class", None) is not None:
        rule = getattr(callback.view_class, RULE_ATTRIBUTE, None)
    if rule is None and namespace:
        rule = NAMESPACE_RULES.get(namespace.split(":")[0])
    return rule
