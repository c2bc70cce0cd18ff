"""Personal API tokens: a user's credential for the REST API, stored as a SHA-256 hash of its secret."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


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

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (jit_{self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"
