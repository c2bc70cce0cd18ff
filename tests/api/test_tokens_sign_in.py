"""Personal API tokens and their owner's sign-in: a token acts with the roles of the latest Entra sign-in (through the
real flow against the emulator), only while that sign-in is recent enough, and never for a deactivated user."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.demo import demo_role_mappings_ensure
from accounts.models import SignInClaims, User
from api import services
from tests.api.conftest import ApiClient
from tests.plugins.personas import PERSONAS, sign_in_with_client

ME = "/api/v1/me/"
VMS = "/api/v1/vms/"
ALICE = PERSONAS["requester"].oid


def sign_in(emulator) -> User:
    """Alice signs in through the real flow (portal → emulator's account picker → callback)."""
    assert sign_in_with_client(Client(SERVER_NAME="127.0.0.1"), emulator, ALICE).status_code == 302
    return User.objects.get(entra_object_id=ALICE)


@pytest.fixture
def alice_token(entra_settings, fresh_emulator) -> ApiClient:
    """A client with a personal API token of Alice (a requester in the demo), made after her sign-in."""
    demo_role_mappings_ensure()
    return ApiClient(services.token_create(actor=sign_in(fresh_emulator), name="ci").secret)


@pytest.mark.django_db(transaction=True)
def test_a_role_taken_away_in_entra_is_gone_from_the_token_at_the_next_sign_in(alice_token, fresh_emulator):
    assert {r["role"] for r in alice_token.get(ME).json()["roles"]} == {"requester"}
    assert alice_token.get(VMS).status_code == 200
    fresh_emulator.control("PUT", f"entra/users/{ALICE}", json={"app_roles": [], "groups": []})
    sign_in(fresh_emulator)
    assert alice_token.get(ME).json()["roles"] == []
    assert alice_token.get(VMS).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_token_is_refused_while_its_owners_latest_sign_in_is_too_old(alice_token, fresh_emulator, settings):
    settings.API_TOKEN_SIGN_IN_MAX_DAYS = 30
    claims = SignInClaims.objects.get(user__entra_object_id=ALICE)
    SignInClaims.objects.filter(pk=claims.pk).update(signed_in_at=timezone.now() - timedelta(days=29))
    assert alice_token.get(ME).status_code == 200  # within the 30 days
    SignInClaims.objects.filter(pk=claims.pk).update(signed_in_at=timezone.now() - timedelta(days=31))
    response = alice_token.get(VMS)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["detail"] == (
        "Your latest sign-in to the portal is more than 30 days old, too old for its roles to stand: sign in again "
        "in the browser, then this token works again.")
    sign_in(fresh_emulator)  # her roles are read again from Entra ID: the same token works again
    assert alice_token.get(VMS).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_deactivated_users_token_stops_at_once_and_signing_in_cannot_revive_it(alice_token, fresh_emulator):
    assert alice_token.get(ME).status_code == 200
    User.objects.filter(entra_object_id=ALICE).update(is_active=False)
    response = alice_token.get(ME)
    assert response.status_code == 401 and response.json()["detail"] == "The token's user is deactivated."
    refused = sign_in_with_client(Client(SERVER_NAME="127.0.0.1"), fresh_emulator, ALICE)
    assert refused.status_code == 403
    assert alice_token.get(ME).status_code == 401


@pytest.mark.django_db
def test_a_break_glass_accounts_token_needs_no_entra_sign_in(breakglass_admin, settings):
    settings.API_TOKEN_SIGN_IN_MAX_DAYS = 1
    client = ApiClient(services.token_create(actor=breakglass_admin, name="recovery").secret)
    response = client.get(ME)
    assert response.status_code == 200 and response.json()["roles"][0]["role"] == "superuser"
