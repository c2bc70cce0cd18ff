"""Portal users. Identities come from Entra ID; local passwords are for break-glass superusers only."""
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person who signs in to the portal."""

    display_name = models.CharField(max_length=255, blank=True)
    entra_tenant_id = models.CharField(max_length=64, blank=True, db_index=True)
    entra_object_id = models.CharField(max_length=64, blank=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["entra_tenant_id", "entra_object_id"],
                condition=~models.Q(entra_object_id=""),
                name="accounts_user_unique_entra_identity",
            )
        ]

    def __str__(self) -> str:
        return self.display_name or self.username

    def get_short_name(self) -> str:
        return self.display_name or self.username
