"""Writes of the API app: creating and revoking personal API tokens, each audited."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record

from .models import ApiToken, longest_lifetime

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


def default_expiry(now: datetime | None = None) -> datetime:
    """The expiry a new token gets unless its owner picks one (``API_TOKEN_DEFAULT_DAYS`` from ``now``)."""
    return (now or timezone.now()) + timedelta(days=settings.API_TOKEN_DEFAULT_DAYS)


def latest_expiry(now: datetime | None = None) -> datetime:
    """The latest expiry a token made at ``now`` may have (``API_TOKEN_MAX_DAYS`` later)."""
    return (now or timezone.now()) + longest_lifetime()


def expiry_problem(expires_at: datetime | None, now: datetime | None = None) -> str:
    """Why a new token may not expire at ``expires_at`` (``None``: never), or ``""`` when it may."""
    now = now or timezone.now()
    latest = latest_expiry(now)
    limit = (f"at most {settings.API_TOKEN_MAX_DAYS} days from now (on or before "
             f"{latest.astimezone(UTC):%Y-%m-%d %H:%M} UTC)")
    if expires_at is None:
        return f"A token must expire: give a date {limit}; the default is {settings.API_TOKEN_DEFAULT_DAYS} days."
    if expires_at <= now:
        return "The expiry date must be in the future."
    if expires_at > latest:
        return f"A token may last {limit}: pick an earlier expiry date."
    return ""


def token_create(*, actor, name: str, expires_at: datetime | None = None, client_ip: str | None = None) -> IssuedToken:
    """Create a personal API token for ``actor``: ``jit_`` + a 32-byte URL-safe random secret (hash stored).

    It expires at ``expires_at``, at most ``API_TOKEN_MAX_DAYS`` away (``None``: the default lifetime,
    ``API_TOKEN_DEFAULT_DAYS``); a later or past expiry is a ``ValidationError`` saying what is allowed.
    """
    if not getattr(actor, "pk", None) or not actor.is_active:
        raise PermissionDenied("Only signed-in users may create API tokens.")
    name = (name or "").strip()
    if not name:
        raise ValidationError("Name the token (what it is for).", code="required")
    if len(name) > 100:
        raise ValidationError("Keep the name under 100 characters.", code="max_length")
    now = timezone.now()
    expires_at = default_expiry(now) if expires_at is None else expires_at
    if problem := expiry_problem(expires_at, now):
        raise ValidationError(problem, code="expiry")
    # Expired tokens no longer count (the page offers no Revoke for them: they would block new tokens for good).
    active = ApiToken.objects.unexpired(now).filter(user=actor).count()
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
                             after={"name": name, "prefix": prefix, "expires_at": expires_at.isoformat()},
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
        if not ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
            # Revoked meanwhile (a second click, another tab): once, at the first one's time (or deleted: gone).
            token.revoked_at = ApiToken.objects.filter(pk=token.pk).values_list("revoked_at", flat=True).first() or now
            return token
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
