"""Whom a signed-in user without a role is told to ask for access: PORTAL_ACCESS_CONTACT as written (escaped, its
e-mail address a mailto: link), else the portal's administrators for a whole subscription, else a plain sentence."""
from __future__ import annotations

import itertools
import re

import pytest
from django.contrib.auth import get_user_model
from django.db.models import signals
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import RoleMapping, SignInClaims
from accounts.selectors import ADMINS_NAMED, AccessContact, access_contact
from tests.plugins.personas import IN_SCOPE, make_persona

pytestmark = pytest.mark.django_db
PAGES = [("dashboard", "no-role"), ("policies:requests", "no-role"), ("my_access", "no-access")]
_numbers = itertools.count(1)


def told(client, url_name: str, box: str) -> str:
    """The box that tells a user without a role where they stand, as HTML with its white space folded."""
    body = client.get(reverse(url_name)).content.decode()
    found = re.search(rf'<p [^>]*id="{box}">(.*?)</p>', body, re.DOTALL)
    assert found, f"{url_name} shows no #{box}"
    return " ".join(found.group(1).split())


def make_admin(name: str, scope: str = IN_SCOPE, *, group: str | None = None, tenant: str | None = None):
    """A user who signed in (from ``tenant``, by default the demo tenant) with a group that a policy admin mapping
    at ``scope`` names."""
    number = next(_numbers)
    group = group or f"9c1d2e3f-00aa-4000-8000-{number:012d}"
    RoleMapping.objects.get_or_create(source_kind="group", source_value=group, role="policy_admin", scope=scope)
    user = get_user_model().objects.create_user(username=f"admin-{number}@contoso.example", display_name=name)
    SignInClaims.objects.create(user=user, tenant_id=tenant or make_persona("outsider").sign_in_claims.tenant_id,
                                groups=[group], signed_in_at=timezone.now())
    return user


@pytest.mark.parametrize(("url_name", "box"), PAGES)
def test_the_configured_contact_is_shown_escaped_with_its_address_as_a_mailto_link(client, settings, outsider,
                                                                                     url_name, box):
    settings.PORTAL_ACCESS_CONTACT = "Cloud <Security> & Ops (jit-admins@contoso.example)"
    make_persona("policy_admin")  # named only when no contact is configured
    client.force_login(outsider)
    text = told(client, url_name, box)
    assert ("To get access, contact Cloud &lt;Security&gt; &amp; Ops "
            '(<a href="mailto:jit-admins@contoso.example">jit-admins@contoso.example</a>) and ask them to map '
            "one of your Entra app roles or groups to a portal role.") in text
    assert "<Security>" not in text and "Bob Security Admin" not in text


def test_a_contact_that_is_a_team_name_is_shown_as_text(client, settings, outsider):
    settings.PORTAL_ACCESS_CONTACT = "the Cloud Security team in #cloud-sec"
    client.force_login(outsider)
    text = told(client, "dashboard", "no-role")
    assert "To get access, contact the Cloud Security team in #cloud-sec and ask them" in text
    assert "mailto:" not in text and "<a href=\"http" not in text


@pytest.mark.parametrize(("url_name", "box"), PAGES)
def test_unset_it_names_the_users_who_administer_a_whole_subscription(client, settings, outsider,
                                                                      breakglass_admin, url_name, box):
    settings.PORTAL_ACCESS_CONTACT = ""
    make_persona("policy_admin")  # Bob: policy admin for Production, by an app role
    make_admin("Rita Resource-Group", f"{IN_SCOPE}/resourceGroups/rg-web-prod")  # one resource group only
    make_persona("requester")
    client.force_login(outsider)
    text = told(client, url_name, box)
    assert ("To get access, ask the portal's administrator (<strong>Bob Security Admin</strong>) to map one of "
            "your Entra app roles or groups to a portal role.") in text
    assert "Rita" not in text and "Alice" not in text and "<strong>admin</strong>" not in text  # nor break-glass

    make_admin("Anna <Admin>")
    text = told(client, url_name, box)
    assert ("ask one of the portal's administrators (<strong>Anna &lt;Admin&gt;</strong> or "
            "<strong>Bob Security Admin</strong>)") in text


def test_past_five_administrators_it_names_five_and_counts_the_others(client, settings, outsider):
    settings.PORTAL_ACCESS_CONTACT = ""
    group = "9c1d2e3f-00bb-4000-8000-000000000001"
    for n in range(ADMINS_NAMED + 2):
        make_admin(f"Admin {n}", group=group)
    get_user_model().objects.filter(display_name="Admin 6").update(is_active=False)  # left the company
    contact = access_contact(outsider)
    assert contact.admins == tuple(f"Admin {n}" for n in range(ADMINS_NAMED)) and contact.more == 1
    client.force_login(outsider)
    assert ", <strong>Admin 4</strong> or 1 other) to map" in told(client, "dashboard", "no-role")


@pytest.mark.parametrize(("url_name", "box"), PAGES)
def test_unset_and_without_administrators_it_says_to_ask_the_azure_or_security_administrator(
        client, settings, outsider, breakglass_admin, url_name, box):
    settings.PORTAL_ACCESS_CONTACT = ""
    make_persona("requester")  # signed in, but nobody who may map roles has
    client.force_login(outsider)
    assert ("To get access, ask your Azure or security administrator to map one of your Entra app roles or groups "
            "to a portal role.") in told(client, url_name, box)


def test_users_with_a_role_are_not_told_whom_to_ask(client, settings, requester):
    settings.PORTAL_ACCESS_CONTACT = "jit-admins@contoso.example"
    client.force_login(requester)
    for url_name, _box in PAGES:
        assert "access-contact" not in client.get(reverse(url_name)).content.decode()


def test_it_reads_only_the_sign_in_claims_that_name_an_administering_role_or_group(settings, django_user_model,
                                                                                  outsider,
                                                                                  django_assert_num_queries):
    """However many users have signed in, naming the administrators reads the claims of those whose app roles or
    groups a mapping that administers a whole subscription names (a few), not every user's: the box is on the
    dashboard of every user without a role."""
    settings.PORTAL_ACCESS_CONTACT = ""
    tenant = outsider.sign_in_claims.tenant_id
    RoleMapping.objects.create(source_kind="group", source_value="9c1d2e3f-00cc-4000-8000-000000000001",
                               role="requester", scope=IN_SCOPE)
    users = django_user_model.objects.bulk_create(
        [django_user_model(username=f"engineer-{n}@contoso.example") for n in range(200)])
    SignInClaims.objects.bulk_create([SignInClaims(
        user=user, tenant_id=tenant, app_roles=["JIT.Requester"], signed_in_at=timezone.now(),
        groups=["9c1d2e3f-00cc-4000-8000-000000000001", *(f"9c1d2e3f-00dd-4000-8000-{n:012d}" for n in range(50))])
        for user in users])
    make_admin("Anna Admin")
    make_persona("policy_admin")
    loaded = []

    def count(sender, instance, **kwargs):
        loaded.append(instance)

    signals.post_init.connect(count, sender=SignInClaims)
    try:
        with django_assert_num_queries(2):  # the mappings; the claims that name theirs, with their users
            contact = access_contact(outsider)
    finally:
        signals.post_init.disconnect(count, sender=SignInClaims)
    assert contact.admins == ("Anna Admin", "Bob Security Admin") and contact.more == 0
    assert len(loaded) <= 2


@pytest.mark.parametrize("value", ["JIT.Administrátor", 'JIT."Admin"', "JIT\\Admin", "jit.admin"])
def test_an_administering_app_role_is_found_however_json_writes_it(settings, value):
    """The claims are narrowed in the database by the JSON text of their app roles and groups: a value JSON writes
    escaped (non-ASCII, quotes, backslashes) or in another case than the mapping still finds its administrator,
    and only the exact value grants the role."""
    settings.PORTAL_ACCESS_CONTACT = ""
    RoleMapping.objects.create(source_kind="app_role", source_value=value, role="policy_admin", scope=IN_SCOPE)
    outsider = make_persona("outsider")
    tenant = outsider.sign_in_claims.tenant_id
    for name, roles in (("Exact Admin", [value]), ("Other Case", [value.upper()])):
        user = get_user_model().objects.create_user(username=f"{name.split()[0].lower()}@contoso.example",
                                                    display_name=name)
        SignInClaims.objects.create(user=user, tenant_id=tenant, app_roles=roles, signed_in_at=timezone.now())
    assert access_contact(outsider).admins == ("Exact Admin",)


OTHER_TENANT = "5b7f2d10-9c3e-4f6a-8b1d-2e4c6a8f0b13"


def sign_in_from(tenant: str, oid: str, name: str, *, roles: tuple[str, ...] = ()):
    """A user as the sign-in service records them from an ID token of ``tenant``."""
    return services.user_sign_in_record(claims={"tid": tenant, "oid": oid, "name": name, "roles": list(roles),
                                                "preferred_username": f"{name.split()[0].lower()}@fabrikam.example"})


@pytest.mark.parametrize(("url_name", "box"), PAGES)
def test_with_several_tenants_a_user_is_offered_only_the_administrators_of_their_own_tenant(
        client, settings, outsider, url_name, box):
    """Mappings for any allowed tenant make administrators in each; a user without a role is told the names of
    their own tenant's only: the others cannot map the user's app roles or groups, and are strangers to them."""
    settings.PORTAL_ACCESS_CONTACT = ""
    settings.ENTRA_ALLOWED_TENANTS = [*settings.ENTRA_ALLOWED_TENANTS, OTHER_TENANT]
    make_persona("policy_admin")  # Bob, of the demo tenant, by the JIT.PolicyAdmin app role (any tenant)
    group = "9c1d2e3f-00ee-4000-8000-000000000001"
    make_admin("Anna Admin", group=group)  # the demo tenant
    make_admin("Olga Fabrikam", group=group, tenant=OTHER_TENANT)  # the same group id, of the other tenant
    sign_in_from(OTHER_TENANT, "6d2a9b40-0000-4000-8000-000000000001", "Pete Fabrikam", roles=("JIT.PolicyAdmin",))
    stranger = sign_in_from(OTHER_TENANT, "6d2a9b40-0000-4000-8000-000000000002", "Quinn Fabrikam")

    client.force_login(outsider)
    text = told(client, url_name, box)
    assert ("ask one of the portal's administrators (<strong>Anna Admin</strong> or "
            "<strong>Bob Security Admin</strong>)") in text
    assert "Fabrikam" not in text

    client.force_login(stranger)
    text = told(client, url_name, box)
    assert ("ask one of the portal's administrators (<strong>Olga Fabrikam</strong> or "
            "<strong>Pete Fabrikam</strong>)") in text
    assert "Anna" not in text and "Bob" not in text


def test_a_mapping_for_another_tenant_makes_no_administrator_to_name(settings, outsider):
    """A mapping limited to the other tenant grants nothing to a user of the demo tenant whose claims name its group,
    nor makes its own tenant's users administrators for a user of the demo tenant."""
    settings.PORTAL_ACCESS_CONTACT = ""
    settings.ENTRA_ALLOWED_TENANTS = [*settings.ENTRA_ALLOWED_TENANTS, OTHER_TENANT]
    group = "9c1d2e3f-00ee-4000-8000-000000000002"
    RoleMapping.objects.create(source_kind="group", source_value=group, tenant_id=OTHER_TENANT, role="policy_admin",
                               scope=IN_SCOPE)
    make_admin("Anna Admin", group=group)  # the demo tenant: the mapping is not for her
    make_admin("Olga Fabrikam", group=group, tenant=OTHER_TENANT)
    assert access_contact(outsider) == AccessContact()


def test_a_user_whose_tenant_is_unknown_is_offered_no_names(settings, django_user_model):
    settings.PORTAL_ACCESS_CONTACT = ""
    make_admin("Anna Admin")
    assert access_contact(django_user_model.objects.create_user(username="local")) == AccessContact()
