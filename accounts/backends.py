"""Authentication backends: Entra ID sessions, and passwords for break-glass superusers only."""
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.utils import timezone

from accounts.authz import tenant_allowed

ENTRA_BACKEND = "accounts.backends.EntraBackend"


class EntraBackend(ModelBackend):
    """Keeps users signed in through Entra ID while their tenant is allowed and their latest sign-in is at most
    ``ENTRA_SIGN_IN_MAX_AGE`` seconds old (roles come from its claims: a role removed in Entra ID lasts no longer
    than that, however busy the session); never accepts a password."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        return None

    def get_user(self, user_id):
        """The session's user, with the claims of their latest sign-in in the same query: authorization reads
        them on every request (``accounts.authz``)."""
        user = get_user_model()._default_manager.select_related("sign_in_claims").filter(pk=user_id).first()
        if user is None or not self.user_can_authenticate(user):
            return None
        if not user.entra_tenant_id:
            return user
        return user if tenant_allowed(user.entra_tenant_id) and claims_fresh(user) else None


def claims_fresh(user, max_age: timedelta | None = None) -> bool:
    """Whether the user's latest Entra sign-in is recent enough (``max_age``, default ``ENTRA_SIGN_IN_MAX_AGE``) to
    act on its claims: browser sessions and Entra bearer tokens both act with them (personal API tokens too, for
    ``API_TOKEN_SIGN_IN_MAX_DAYS``)."""
    claims = getattr(user, "sign_in_claims", None)
    oldest = timezone.now() - (max_age if max_age is not None else timedelta(seconds=settings.ENTRA_SIGN_IN_MAX_AGE))
    return claims is not None and claims.signed_in_at >= oldest


class BreakGlassPasswordBackend(ModelBackend):
    """Local username and password, for active superusers only (the break-glass account).

    Everyone else signs in with Entra ID: a password set on an ordinary account is never accepted, and a
    password session ends at the next request once the account stops being a superuser.
    """

    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and bool(getattr(user, "is_superuser", False))
