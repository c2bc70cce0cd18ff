"""Reads of the API app: a user's own tokens, and the token a secret names."""
from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from .models import ApiToken
from .services import TOKEN_PREFIX, secret_hash


def tokens_for_user(user) -> QuerySet[ApiToken]:
    """The user's own tokens, newest first (nobody sees another user's tokens)."""
    return ApiToken.objects.filter(user_id=getattr(user, "pk", None))


def token_get(user, pk: int) -> ApiToken:
    try:
        return tokens_for_user(user).get(pk=pk)
    except (ApiToken.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such token.") from exc


def token_for_secret(secret: str) -> ApiToken | None:
    """The token whose secret is ``secret`` (compared by hash), with its user and their sign-in claims, or ``None``."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    return ApiToken.objects.select_related("user", "user__sign_in_claims").filter(
        secret_hash=secret_hash(secret)).first()
