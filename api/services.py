"""Writes of the API app: creating and revoking personal API tokens, each audited."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record

from .models import ApiToken

TOKEN_PREFIX = "jit_"
MAX_ACTIVE_TOKENS = 20


def secret_hash(secret: str) -> str:
    """The stored form of a token secret (hex SHA-256 of the whole ``jit_…`` string)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    """A token just created, with its secret: the only time the secret exists outside the caller's hands."""

    token: ApiToken
    secret: str


def token_create(*, actor, name: str, expires_at: datetime | None = None, client_ip: str | None = None) -> IssuedToken:
    """Create a personal API token for ``actor``: ``jit_`` + a 32-byte URL-safe random secret (hash stored)."""
    if not getattr(actor, "pk", None) or not actor.is_active:
        raise PermissionDenied("Only signed-in users may create API tokens.")
    name = (name or "").strip()
    if not name:
        raise ValidationError("Name the token (what it is for).", code="required")
    if len(name) > 100:
        raise ValidationError("Keep the name under 100 characters.", code="max_length")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError("The expiry date must be in the future.", code="expired")
    # Expired tokens no longer count (the page offers no Revoke for them: they would block new tokens for good).
    active = ApiToken.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()), user=actor,
                                     revoked_at__isnull=True).count()
    if active >= MAX_ACTIVE_TOKENS:
        raise ValidationError(f"You have {active} active tokens; revoke one first.", code="too_many")
    for _attempt in range(5):
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        prefix = secret[len(TOKEN_PREFIX):len(TOKEN_PREFIX) + 8]
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(user=actor, name=name, prefix=prefix, secret_hash=secret_hash(secret),
                                                expires_at=expires_at)
                audit_record(actor=actor, action="api_token.created", target_type="api_token", target_id=str(token.pk),
                             target_label=f"{name} (jit_{prefix}…)",
                             after={"name": name, "prefix": prefix,
                                    "expires_at": expires_at.isoformat() if expires_at else None},
                             client_ip=client_ip)
            return IssuedToken(token, secret)
        except IntegrityError:
            continue  # a prefix collision: draw again
    raise ValidationError("Could not create a token; try again.", code="collision")


def token_revoke(*, actor, token: ApiToken, client_ip: str | None = None) -> ApiToken:
    """Revoke ``token`` (its owner only); at once every request with it gets 401."""
    if token.user_id != getattr(actor, "pk", None):
        raise PermissionDenied("You may revoke only your own tokens.")
    if token.revoked_at is not None:
        return token
    with transaction.atomic():
        now = timezone.now()
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
        token.revoked_at = now
        audit_record(actor=actor, action="api_token.revoked", target_type="api_token", target_id=str(token.pk),
                     target_label=f"{token.name} (jit_{token.prefix}…)", before={"status": "active"},
                     after={"status": "revoked"}, client_ip=client_ip)
    return token


def token_touch(token: ApiToken) -> None:
    """Record that ``token`` was used (at most once a minute, so reads do not write on every call)."""
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
