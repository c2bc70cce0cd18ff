"""Secrets the portal must read back, sealed wherever they are stored, so a copy of the database alone reveals
none: webhook secrets (it signs ``X-Jitportal-Signature`` with them, so they cannot be hashed like API tokens)
and a new secret held in the session until the next page shows it once.

Fernet (AES-128-CBC with HMAC-SHA256) under a key derived (HKDF-SHA256) from ``SECRET_KEY``. Rotating
``SECRET_KEY``: keep the old key in ``DJANGO_SECRET_KEY_FALLBACKS``, run ``manage.py reseal_webhook_secrets``,
then drop the old key.
"""
from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_PURPOSE = b"jitportal webhook secret"


class SecretUnreadable(Exception):
    """A sealed secret that no configured key opens (``SECRET_KEY`` changed without its fallback)."""


def _fernet(key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


@lru_cache(maxsize=8)
def _box(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_fernet(key) for key in keys])


def _keys() -> MultiFernet:
    """Seal with ``SECRET_KEY``; open with it or any of ``SECRET_KEY_FALLBACKS``."""
    return _box((settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS))


def seal(secret: str) -> str:
    """``secret`` encrypted for storage."""
    return _keys().encrypt(secret.encode()).decode()


def unseal(sealed: str) -> str:
    """The secret in ``sealed``; ``SecretUnreadable`` when no configured key opens it."""
    try:
        return _keys().decrypt(sealed.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable(
            "The webhook's secret cannot be read with this SECRET_KEY or its fallbacks; make it a new secret "
            "(Rotate secret) or put the previous key in DJANGO_SECRET_KEY_FALLBACKS.") from exc


def reseal(sealed: str) -> str:
    """``sealed`` sealed again under the current ``SECRET_KEY`` (``SecretUnreadable`` as for ``unseal``)."""
    try:
        return _keys().rotate(sealed.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("no configured key opens this secret") from exc


def keep_once(session, key: str, secret: str, **context) -> None:
    """Keep ``secret`` (sealed) in the session for the next page to show once, with ``context`` beside it."""
    session[key] = {**context, "sealed": seal(secret)}


def take_once(session, key: str) -> dict | None:
    """What ``keep_once`` kept, with ``secret`` opened, now gone from the session; ``None`` when nothing is."""
    kept = session.pop(key, None)
    if not isinstance(kept, dict) or "sealed" not in kept:
        return None
    try:
        return {**kept, "secret": unseal(kept["sealed"])}
    except SecretUnreadable:
        return None
