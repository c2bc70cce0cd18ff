"""Personal API tokens: a user's credential for the REST API, stored as a SHA-256 hash of its secret."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


def longest_lifetime() -> timedelta:
    """How long any token may work after it was made (``API_TOKEN_MAX_DAYS``)."""
    return timedelta(days=settings.API_TOKEN_MAX_DAYS)


class ApiTokenQuerySet(models.QuerySet):
    def unexpired(self, now: datetime | None = None) -> ApiTokenQuerySet:
        """Tokens not revoked and not past their expiry (``ApiToken.expires``) at ``now``."""
        now = now or timezone.now()
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), revoked_at__isnull=True,
                           created_at__gt=now - longest_lifetime())


class ApiToken(models.Model):
    """One personal API token. The secret (``jit_<prefix><rest>``) is shown once; only its hash is kept.

    A token acts as its user with the user's current roles (``accounts.authz``), never more.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for (shown in the list).")
    prefix = models.CharField(max_length=8, unique=True, help_text="The first 8 characters of the secret, shown.")
    secret_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the whole secret, hex.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (jit_{self.prefix}…)"

    @property
    def expires(self) -> datetime:
        """When the token stops working: its expiry, but never later than ``API_TOKEN_MAX_DAYS`` after it was made
        (a token made before that limit, or before it was lowered, may have a later expiry or none)."""
        cap = (self.created_at or timezone.now()) + longest_lifetime()
        return cap if self.expires_at is None else min(self.expires_at, cap)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires > timezone.now()

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires <= timezone.now():
            return "expired"
        return "active"
