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


@pytest.mark.parametrize("claims", [{"name": "Al\x00ice"}, {"preferred_username": "alice\x00@contoso.example"},
                                    {"given_name": "Al\x00"}, {"roles": ["JIT.Requester", "JIT.\x00Admin"]},
                                    {"groups": ["\x00"]}], ids=["name", "username", "other-claim", "roles", "groups"])
def test_a_nul_in_a_claim_is_not_stored(entra_settings, fresh_emulator, persona_mappings, claims):
    """PostgreSQL stores no NUL in text or JSON: a claim carrying one still signs its user in, without it."""
    from allauth.socialaccount.models import SocialAccount

    client, response = sign_in_with_claims(fresh_emulator, claims)
    assert response.status_code == 302, response.content.decode()[:500]
    user = User.objects.get(entra_object_id=ALICE.oid)
    stored = SignInClaims.objects.get(user=user)
    texts = [user.username, user.display_name, user.email, *stored.app_roles, *stored.groups,
             str(SocialAccount.objects.get(user=user).extra_data)]
    assert not any("\x00" in text or "\\x00" in text for text in texts), texts
    assert "JIT.Requester" in stored.app_roles and client.get(reverse("my_access")).status_code == 200


@pytest.mark.parametrize("claims", [{"oid": ALICE.oid + "0" * 40}, {"oid": ALICE.oid[:-1] + "\x00"}],
                         ids=["long-oid", "nul-oid"])
def test_a_user_id_entra_never_issues_is_refused_clearly(entra_settings, fresh_emulator, persona_mappings, claims):
    _client, response = sign_in_with_claims(fresh_emulator, claims)
    body = response.content.decode()
    assert response.status_code == 401 and "tenant and user ids (tid, oid)" in body, body[:500]
    assert not User.objects.filter(entra_object_id__startswith=ALICE.oid[:8]).exists()


@pytest.mark.parametrize("claims", [{"tid": "8a0e7c31-" + "0" * 60, "oid": ALICE.oid},
                                    {"tid": "8a0e7c31-\x00", "oid": ALICE.oid},
                                    {"tid": "8a0e7c31", "oid": "a\nb"}], ids=["long-tid", "nul-tid", "newline-oid"])
def test_recording_a_sign_in_refuses_ids_entra_never_issues(claims):
    """A tenant allowed by any tenant (the sign-in's check comes first) still cannot store such a ``tid``."""
    from accounts.services import SignInClaimsError, user_sign_in_record

    with pytest.raises(SignInClaimsError, match=r"tenant and user ids \(tid, oid\)"):
        user_sign_in_record(claims=claims)
    assert not User.objects.exists()
