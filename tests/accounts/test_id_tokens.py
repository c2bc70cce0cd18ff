"""ID token checks the portal adds to allauth's: signature always, tenant, issuer, audience, nonce, replay."""
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from accounts.oidc import SignInRefused, consume_nonce, verify_id_token

TENANT = "8a0e7c31-4a8e-4d8b-9d2a-6f6a1b2c3d4e"
OTHER_TENANT = "5b1f2d3c-7e8a-4b9c-8d0e-1f2a3b4c5d6e"
CLIENT = "0d3b6a9e-5c1f-4e2a-9b7d-1a2b3c4d5e6f"
ISSUER = f"https://login.example/{TENANT}/v2.0"
NONCE = "n-0123456789"


@pytest.fixture(scope="module")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks(signing_key):
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    return {"keys": [jwk | {"kid": "k1", "use": "sig", "alg": "RS256"}]}


def make_token(key, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT, "tid": TENANT, "oid": "8a0e7c31-0000-4000-8000-000000000001",
              "iat": now, "nbf": now, "exp": now + 3600, "nonce": NONCE, "preferred_username": "alice@contoso.example"}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


def verify(token, jwks, **kwargs):
    options = {"jwks": jwks, "issuer": ISSUER, "client_id": CLIENT, "allowed_tenants": [TENANT],
               "expected_nonce": NONCE} | kwargs
    return verify_id_token(token, **options)


def test_a_good_token_passes(signing_key, jwks):
    assert verify(make_token(signing_key), jwks)["oid"].endswith("0001")


def test_a_multi_tenant_issuer_is_filled_with_the_tokens_tenant(signing_key, jwks):
    template = "https://login.example/{tenantid}/v2.0"
    token = make_token(signing_key, tid=OTHER_TENANT, iss=f"https://login.example/{OTHER_TENANT}/v2.0")
    assert verify(token, jwks, issuer=template, allowed_tenants=[TENANT, OTHER_TENANT])["tid"] == OTHER_TENANT


def test_a_tampered_token_is_refused(signing_key, jwks):
    header, payload, signature = make_token(signing_key).split(".")
    forged = jwt.utils.base64url_encode(json.dumps(
        json.loads(jwt.utils.base64url_decode(payload)) | {"roles": ["JIT.PolicyAdmin"]}).encode()).decode()
    with pytest.raises(SignInRefused, match="signature does not verify"):
        verify(f"{header}.{forged}.{signature}", jwks)


def test_a_token_signed_by_another_key_is_refused(jwks):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(SignInRefused, match="signature does not verify"):
        verify(make_token(other), jwks)


def test_an_unsigned_token_is_refused(jwks):
    token = jwt.encode({"iss": ISSUER}, key=None, algorithm="none")
    with pytest.raises(SignInRefused, match="'none'"):
        verify(token, jwks)


def test_an_expired_token_is_refused(signing_key, jwks):
    past = int(time.time()) - 3 * 3600
    with pytest.raises(SignInRefused, match="expired"):
        verify(make_token(signing_key, iat=past, nbf=past, exp=past + 3600), jwks)


def test_a_token_of_a_tenant_not_allowed_is_refused(signing_key, jwks):
    token = make_token(signing_key, tid=OTHER_TENANT, iss=f"https://login.example/{OTHER_TENANT}/v2.0")
    with pytest.raises(SignInRefused, match="not allowed to sign in"):
        verify(token, jwks)


def test_a_token_whose_issuer_is_not_its_tenants_is_refused(signing_key, jwks):
    with pytest.raises(SignInRefused, match="issued by"):
        verify(make_token(signing_key, iss="https://evil.example/v2.0"), jwks)
    token = make_token(signing_key, tid=OTHER_TENANT)  # the allowed issuer, another tenant's tid
    with pytest.raises(SignInRefused, match="issued by"):
        verify(token, jwks, allowed_tenants=[TENANT, OTHER_TENANT])


def test_a_token_for_another_application_is_refused(signing_key, jwks):
    with pytest.raises(SignInRefused, match="another application"):
        verify(make_token(signing_key, aud="11111111-2222-3333-4444-555555555555"), jwks)


def test_a_token_without_the_sign_ins_nonce_is_refused(signing_key, jwks):
    with pytest.raises(SignInRefused, match="nonce does not match"):
        verify(make_token(signing_key, nonce="someone-elses"), jwks)
    with pytest.raises(SignInRefused, match="no nonce"):
        verify(make_token(signing_key, nonce=None), jwks)
    with pytest.raises(SignInRefused, match="not started by the portal"):
        verify(make_token(signing_key), jwks, expected_nonce=None)


def test_a_token_without_tid_or_oid_is_refused(signing_key, jwks):
    with pytest.raises(SignInRefused, match="'tid' claim"):
        verify(make_token(signing_key, tid=None), jwks)


@pytest.mark.django_db
def test_a_nonce_is_accepted_once():
    consume_nonce("abc")
    with pytest.raises(SignInRefused, match="already been used"):
        consume_nonce("abc")
    consume_nonce("abd")
