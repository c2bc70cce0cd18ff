"""A validly signed ID token whose claims have odd shapes signs its user in with what can be read of it, not a 500."""
import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import SignInClaims, User
from tests.plugins.personas import PERSONAS, sign_in_with_client

pytestmark = pytest.mark.django_db(transaction=True)

ALICE = PERSONAS["requester"]


def sign_in_with_claims(emulator, claims: dict) -> tuple[Client, object]:
    """Alice signed in through the real flow, her ID token carrying ``claims`` (a ``None`` leaves one out)."""
    emulator.control("POST", "entra/next-id-token-claims", json={"claims": claims})
    client = Client(SERVER_NAME="127.0.0.1")
    return client, sign_in_with_client(client, emulator, ALICE.oid)


@pytest.mark.parametrize("claims", [
    {"name": {"given": "Alice"}},
    {"name": ["Alice", "Requester"]},
    {"preferred_username": 7},
    {"email": ["alice@contoso.example"]},
    {"email": 5},
    {"given_name": 5, "family_name": ["Requester"]},
    {"picture": {"url": "x"}},
], ids=lambda claims: "-".join(f"{k}-{type(v).__name__}" for k, v in claims.items()))
def test_a_profile_claim_that_is_not_text_is_left_out(entra_settings, fresh_emulator, persona_mappings, claims):
    client, response = sign_in_with_claims(fresh_emulator, claims)
    assert response.status_code == 302, response.content.decode()[:500]
    user = User.objects.get(entra_object_id=ALICE.oid)
    assert user.username == ALICE.username  # from preferred_username, else the e-mail claim (as the emulator sets)
    assert user.display_name in (ALICE.name, ALICE.username)
    assert user.email in ("", ALICE.username)
    assert client.get(reverse("my_access")).status_code == 200


def test_roles_and_groups_that_are_not_lists_grant_nothing(entra_settings, fresh_emulator, persona_mappings):
    client, response = sign_in_with_claims(fresh_emulator, {"roles": "JIT.Requester", "groups": {"id": "x"}})
    assert response.status_code == 302
    claims = SignInClaims.objects.get(user__entra_object_id=ALICE.oid)
    assert (claims.app_roles, claims.groups) == ([], [])
    assert 'id="no-access"' in client.get(reverse("my_access")).content.decode()


def test_a_huge_roles_list_is_read(entra_settings, fresh_emulator, persona_mappings):
    roles = [f"Other.Role{n}" for n in range(5000)] + ["JIT.Requester", 3, None, ["JIT.PolicyAdmin"]]
    client, response = sign_in_with_claims(fresh_emulator, {"roles": roles})
    assert response.status_code == 302
    assert "JIT.Requester" in SignInClaims.objects.get(user__entra_object_id=ALICE.oid).app_roles
    assert "Requester" in client.get(reverse("my_access")).content.decode()


def test_a_name_with_markup_is_shown_as_text(entra_settings, fresh_emulator, persona_mappings):
    client, response = sign_in_with_claims(fresh_emulator, {"name": '<img src=x onerror="alert(1)">Alice'})
    assert response.status_code == 302
    body = client.get(reverse("my_access")).content.decode()
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;Alice" in body and "<img src=x" not in body


def test_without_a_name_or_user_name_the_user_is_named_by_object_id(entra_settings, fresh_emulator,
                                                                   persona_mappings):
    client, response = sign_in_with_claims(fresh_emulator, {"name": None, "preferred_username": None, "email": None})
    assert response.status_code == 302
    user = User.objects.get(entra_object_id=ALICE.oid)
    assert (user.username, user.display_name, user.email) == (ALICE.oid, ALICE.oid, "")
    assert client.get(reverse("my_access")).status_code == 200


@pytest.mark.parametrize(("hasgroups", "overage"), [("false", False), ("False", False), (False, False),
                                                    ("true", True), (True, True)])
def test_only_a_true_hasgroups_means_group_overage(entra_settings, fresh_emulator, hasgroups, overage):
    """``hasgroups`` says the user is in too many groups to list; the text "false" does not."""
    _client, _response = sign_in_with_claims(fresh_emulator, {"hasgroups": hasgroups})
    assert SignInClaims.objects.get(user__entra_object_id=ALICE.oid).groups_overage is overage
