"""Helpers for the Entra tests: the demo identities in process, a sign-in walker, a relying party's ID token check."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import jwt

from emulator.entra.models import EntraApp, EntraGroup, EntraTenant, EntraUser
from emulator.entra.standalone import IdentityState, create_identity_app
from emulator.scenarios.identities import CONTOSO, PORTAL_CLIENT_ID, PORTAL_SECRET, demo_identities, user_oid

BASE = "https://127.0.0.1:5443"
REDIRECT = "http://127.0.0.1:45678/accounts/oidc/entra/login/callback/"
ALICE = user_oid(1)
OSCAR = user_oid(7)


class NonceMismatch(Exception):
    """The ID token's nonce is not the one the sign-in sent."""


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def demo_tenants() -> list[EntraTenant]:
    return [EntraTenant(tenant_id=t["tenant_id"], display_name=t["display_name"], domain=t["domain"],
                        users=[EntraUser(**u) for u in t["users"]], groups=[EntraGroup(**g) for g in t["groups"]],
                        apps=[EntraApp(**a) for a in t["apps"]])
            for t in demo_identities()]


def relying_party_verify(token: str, jwks: dict, *, issuer: str, client_id: str, nonce: str) -> dict:
    """What a careful relying party checks: key, signature, lifetime, audience, exact issuer, nonce."""
    keys = jwt.PyJWKSet.from_dict(jwks)
    key = keys[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=client_id, issuer=issuer,
                        options={"require": ["exp", "iat", "iss", "aud", "tid", "oid", "nonce"]})
    if not hmac.compare_digest(claims["nonce"], nonce):
        raise NonceMismatch(claims["nonce"])
    return claims


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class InProcessIdp:
    """The Entra blueprint in a Flask test client over the demo identities, and a sign-in walker."""

    def __init__(self, cert_dir, tenants: list[EntraTenant] | None = None, tenant: str = CONTOSO) -> None:
        self.state = IdentityState(tenants or demo_tenants(), cert_dir)
        self.app = create_identity_app(self.state)
        self.client = self.app.test_client()
        self.tenant = tenant
        self.verifier = secrets.token_urlsafe(48)
        self.nonce = secrets.token_urlsafe(16)
        self.params = {"client_id": PORTAL_CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code",
                       "scope": "openid profile email offline_access", "state": "st-1", "nonce": self.nonce,
                       "code_challenge": s256(self.verifier), "code_challenge_method": "S256"}

    # --- raw calls --------------------------------------------------------------------------------------------
    def get(self, path: str, **kwargs):
        return self.client.get(path, base_url=BASE, **kwargs)

    def post(self, path: str, **kwargs):
        return self.client.post(path, base_url=BASE, **kwargs)

    def path(self, rest: str, tenant: str | None = None) -> str:
        return f"/{tenant or self.tenant}/{rest}"

    # --- the code flow ----------------------------------------------------------------------------------------
    def authorize(self, tenant: str | None = None, **overrides):
        return self.get(self.path("oauth2/v2.0/authorize", tenant), query_string={**self.params, **overrides})

    def choose(self, oid: str = ALICE, tenant: str | None = None, **overrides) -> dict[str, str]:
        response = self.post(self.path("oauth2/v2.0/authorize", tenant),
                             data={**self.params, **overrides, "user_oid": oid})
        assert response.status_code == 302, response.text
        return query_of(response.headers["Location"])

    def token(self, tenant: str | None = None, **form):
        data = {"client_id": PORTAL_CLIENT_ID, "client_secret": PORTAL_SECRET, **form}
        return self.post(self.path("oauth2/v2.0/token", tenant), data={k: v for k, v in data.items() if v is not None})

    def exchange(self, code: str, tenant: str | None = None, **overrides):
        return self.token(tenant, **{"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                     "code_verifier": self.verifier, **overrides})

    def sign_in(self, oid: str = ALICE) -> dict:
        response = self.exchange(self.choose(oid)["code"])
        assert response.status_code == 200, response.text
        return response.json

    def jwks(self) -> dict:
        return self.get(self.path("discovery/v2.0/keys")).json

    def verify_id_token(self, token: str, tenant: str | None = None) -> dict:
        return relying_party_verify(token, self.jwks(), issuer=f"{BASE}/{tenant or self.tenant}/v2.0",
                                    client_id=PORTAL_CLIENT_ID, nonce=self.nonce)

    def spoil_next_id_token(self, mode: str) -> None:
        response = self.post("/_emulator/entra/next-id-token", json={"mode": mode})
        assert response.status_code == 200, response.text


UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# Entra ID's AADSTS50105 for Alice taken off the demo app, with the lines it adds (as a redirect carries them).
ALICE_NOT_ASSIGNED = re.compile(
    r"AADSTS50105: Your administrator has configured the application JIT Portal \('[0-9a-f-]+'\) to block users "
    r"unless they are specifically granted \('assigned'\) access to the application\. The signed in user "
    r"'alice@contoso\.example' is blocked because .* Please contact your administrator to assign access to this "
    rf"application\.\r\nTrace ID: {UUID}\r\nCorrelation ID: {UUID}\r\n"
    r"Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ")
