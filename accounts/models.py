"""Portal users, the claims their last sign-in carried, and the mappings from claims to portal roles.

Identities come from Entra ID; local passwords are for break-glass superusers only. Effective access is
computed on every request from the stored claims and the current mappings (see ``accounts.authz``).
"""
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models

from accounts.roles import ROLE_CHOICES


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


class SignInClaims(models.Model):
    """The authorization-relevant claims of the user's latest Entra ID sign-in."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True,
                                related_name="sign_in_claims")
    tenant_id = models.CharField(max_length=64)
    app_roles = models.JSONField(default=list, blank=True, help_text="Values of the 'roles' claim.")
    groups = models.JSONField(default=list, blank=True, help_text="Group object ids of the 'groups' claim.")
    groups_overage = models.BooleanField(
        default=False, help_text="The token said the user is in too many groups to list; the groups were read from "
                                 "Microsoft Graph instead, unless groups_error says why not.",
    )
    groups_error = models.TextField(
        blank=True, help_text="Why the groups of an overage sign-in could not be read from Microsoft Graph (group "
                              "mappings not applied).",
    )
    signed_in_at = models.DateTimeField()

    class Meta:
        verbose_name = "sign-in claims"
        verbose_name_plural = "sign-in claims"

    def __str__(self) -> str:
        return f"claims of {self.user}"


class RoleMapping(models.Model):
    """An Entra app role value or group object id that grants a portal role at a scope."""

    class SourceKind(models.TextChoices):
        APP_ROLE = "app_role", "Entra app role"
        GROUP = "group", "Entra group"

    # ``accounts.authz.restrict`` reads a mapping's scope from this field.
    AUTHZ_FIELDS = {"resource_id_field": "scope"}

    source_kind = models.CharField("source", max_length=16, choices=SourceKind.choices)
    source_value = models.CharField(
        "app role value or group id", max_length=255,
        help_text="The app role's value (e.g. JIT.Requester) or the group's object id.",
    )
    tenant_id = models.CharField(
        max_length=64, blank=True,
        help_text="Only for sign-ins from this tenant; empty means any allowed tenant.",
    )
    role = models.CharField(max_length=32, choices=ROLE_CHOICES)
    scope = models.CharField(
        max_length=512,
        help_text="/subscriptions/{id}, …/resourceGroups/{name}, or …/providers/Microsoft.Compute/"
                  "virtualMachines/{name}",
    )
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")

    class Meta:
        ordering = ["source_kind", "source_value", "role", "scope"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_kind", "source_value", "tenant_id", "role", "scope"],
                name="accounts_rolemapping_unique",
            )
        ]
        indexes = [models.Index(fields=["source_kind", "source_value"], name="accounts_rolemapping_source")]

    def __str__(self) -> str:
        return f"{self.get_source_kind_display()} {self.source_value} → {self.get_role_display()} at {self.scope}"


class UsedSignInNonce(models.Model):
    """A nonce an ID token has been accepted with; a second token with the same nonce is a replay."""

    digest = models.CharField(max_length=64, unique=True)
    used_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return self.digest[:12]
