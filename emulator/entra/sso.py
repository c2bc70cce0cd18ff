"""The single sign-on session: a cookie naming the tenant and user of a browser's last interactive sign-in, signed
with HMAC under a secret of the running emulator, as Entra ID's ``ESTSAUTH`` lets ``prompt=none`` answer silently."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

from flask import Response, request

from emulator.entra.models import EntraTenant, EntraUser
from emulator.entra.runtime import runtime, user_in

COOKIE = "ESTSAUTH"
_ATTRIBUTES = {"path": "/", "secure": True, "httponly": True, "samesite": "None"}


def _signature(payload: str) -> str:
    digest = hmac.new(runtime().sso_secret, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def remember(response: Response, tenant: EntraTenant, user: EntraUser) -> Response:
    """``response`` with the session cookie of ``user`` of ``tenant`` (a session cookie: no expiry)."""
    payload = base64.urlsafe_b64encode(json.dumps([tenant.tenant_id, user.oid]).encode()).rstrip(b"=").decode()
    response.set_cookie(COOKIE, f"{payload}.{_signature(payload)}", **_ATTRIBUTES)
    return response


def forget(response: Response) -> Response:
    """``response`` clearing the session cookie."""
    response.delete_cookie(COOKIE, **_ATTRIBUTES)
    return response


def signed_in(tenants: list[EntraTenant]) -> tuple[EntraTenant, EntraUser] | None:
    """The tenant and user the request's session cookie names, if its signature holds and they are among ``tenants``."""
    payload, _dot, signature = request.cookies.get(COOKIE, "").partition(".")
    if not payload or not hmac.compare_digest(signature.encode(), _signature(payload).encode()):
        return None
    tenant_id, oid = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return user_in([t for t in tenants if t.tenant_id == tenant_id], oid)
