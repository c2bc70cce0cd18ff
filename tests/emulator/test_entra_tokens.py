"""``verify_access_token``: what ARM and Graph accept from the emulated Entra ID, and what they refuse."""
from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from emulator.entra import tokens
from emulator.entra.keys import load_or_create
from emulator.entra.standalone import IdentityState
from emulator.scenarios.identities import CONTOSO, PORTAL_CLIENT_ID
from tests.emulator.entra_helpers import demo_tenants


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> IdentityState:
    return IdentityState(demo_tenants(), tmp_path_factory.mktemp("entra-certs"))


@pytest.fixture
def contoso(state):
    return state.tenants[CONTOSO]


def arm_claims(**changes) -> dict:
    now = int(time.time())
    claims = {"aud": "https://management.azure.com/", "iss": tokens.v1_issuer(CONTOSO), "tid": CONTOSO,
              "oid": "0d3b6a9e-0000-4000-8000-00000000a001", "appid": PORTAL_CLIENT_ID, "idtyp": "app",
              "iat": now, "nbf": now, "exp": now + 3600}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_an_app_token_verifies_for_arm_with_or_without_the_trailing_slash(state, contoso):
    token = tokens.app_token(state, contoso, contoso.app(PORTAL_CLIENT_ID), tokens.ARM_AUDIENCE)
    for audience in ("https://management.azure.com", "https://management.azure.com/"):
        claims = tokens.verify_access_token(state, token, audience=audience)
        assert (claims["tid"], claims["appid"], claims["idtyp"]) == (CONTOSO, PORTAL_CLIENT_ID, "app")
    assert tokens.verify_access_token(state, tokens.sign(state, arm_claims()), audience=tokens.ARM_AUDIENCE)


def test_a_user_token_carries_the_user_name_roles_and_groups(state, contoso):
    user = contoso.user("8a0e7c31-0000-4000-8000-000000000001")
    token = tokens.user_token(state, contoso, contoso.app(PORTAL_CLIENT_ID), user, tokens.GRAPH_AUDIENCE, "User.Read")
    claims = tokens.verify_access_token(state, token, audience=tokens.GRAPH_AUDIENCE)
    assert claims["upn"] == claims["preferred_username"] == "alice@contoso.example"
    assert claims["roles"] == ["JIT.Requester"]
    assert claims["scp"] == "User.Read"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"aud": "https://graph.microsoft.com"}, "audience"),
    ({"exp": -300}, "expired"),
    ({"exp": None}, "expired"),
    ({"nbf": 600}, "not yet valid"),
    ({"tid": "11111111-2222-3333-4444-555555555555",
      "iss": tokens.v1_issuer("11111111-2222-3333-4444-555555555555")}, "tenant"),
    ({"iss": tokens.v1_issuer("5b1f2d3c-7e8a-4b9c-8d0e-1f2a3b4c5d6e")}, "issuer"),
    ({"iss": "https://login.attacker.example/"}, "issuer"),
])
def test_a_token_with_a_wrong_claim_is_refused_with_the_reason(state, changes, reason):
    """A time in ``changes`` is seconds from when the test runs, not from collection: a test run late in a long
    suite would otherwise sign a token whose ``nbf`` has already passed."""
    now = int(time.time())
    claims = arm_claims(**{name: now + value if name in ("exp", "nbf") and value is not None else value
                           for name, value in changes.items()})
    with pytest.raises(tokens.InvalidToken, match=reason):
        tokens.verify_access_token(state, tokens.sign(state, claims), audience=tokens.ARM_AUDIENCE)


def test_a_token_within_the_clock_leeway_still_verifies(state):
    token = tokens.sign(state, arm_claims(exp=int(time.time()) - 20))
    assert tokens.verify_access_token(state, token, audience=tokens.ARM_AUDIENCE)


def test_a_token_signed_by_another_key_is_refused(state, tmp_path):
    foreign = load_or_create(tmp_path)
    token = jwt.encode(arm_claims(), foreign.private_key, algorithm="RS256",
                       headers={"kid": tokens.signing_key(state).kid})
    with pytest.raises(tokens.InvalidToken, match="cannot be validated"):
        tokens.verify_access_token(state, token)
    unknown_kid = jwt.encode(arm_claims(), foreign.private_key, algorithm="RS256", headers={"kid": foreign.kid})
    with pytest.raises(tokens.InvalidToken, match="known key"):
        tokens.verify_access_token(state, unknown_kid)


def test_an_altered_payload_is_refused(state):
    header, _payload, signature = tokens.sign(state, arm_claims()).split(".")
    forged = base64.urlsafe_b64encode(json.dumps(arm_claims(roles=["Owner"])).encode()).rstrip(b"=").decode()
    with pytest.raises(tokens.InvalidToken):
        tokens.verify_access_token(state, f"{header}.{forged}.{signature}")


def test_unsigned_and_symmetric_tokens_are_refused(state):
    kid = tokens.signing_key(state).kid
    unsigned = jwt.encode(arm_claims(), None, algorithm="none", headers={"kid": kid})
    hmac_signed = jwt.encode(arm_claims(), "x" * 32, algorithm="HS256", headers={"kid": kid})
    for token in (unsigned, hmac_signed, "not-a-jwt", ""):
        with pytest.raises(tokens.InvalidToken):
            tokens.verify_access_token(state, token)
