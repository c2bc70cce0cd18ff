"""The authorization API: grants from mappings x the claims of the latest sign-in, computed per request."""
import pytest
from django.http import Http404

from accounts import authz, services
from accounts.models import RoleMapping
from accounts.roles import JIT_INITIATE, JIT_POLICY_WRITE, SETTINGS_WRITE, VM_READ
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE, PERSONAS, WEB_GROUP

VM_IN = f"{IN_SCOPE}/resourceGroups/rg-data-prod/providers/Microsoft.Compute/virtualMachines/db-01"
VM_OUT = f"{OUT_OF_SCOPE}/resourceGroups/rg-dev/providers/Microsoft.Compute/virtualMachines/dev-01"
WEB_VM_ON_DEV = f"{OUT_OF_SCOPE}/resourceGroups/rg-web-prod/providers/Microsoft.Compute/virtualMachines/web-01"

pytestmark = pytest.mark.django_db


def fresh(user):
    """The same user as the next request would load it (no per-request cache)."""
    return type(user).objects.get(pk=user.pk)


def test_a_role_applies_at_its_scope_and_below_only(requester):
    assert authz.has_permission(requester, JIT_INITIATE, VM_IN)
    assert authz.has_permission(requester, JIT_INITIATE, IN_SCOPE)
    assert not authz.has_permission(requester, JIT_INITIATE, VM_OUT)
    assert not authz.has_permission(requester, JIT_POLICY_WRITE, VM_IN)


def test_a_policy_admin_configures_in_scope_and_manages_its_mappings(policy_admin):
    assert authz.has_permission(policy_admin, JIT_POLICY_WRITE, VM_IN)
    assert not authz.has_permission(policy_admin, JIT_POLICY_WRITE, VM_OUT)
    assert authz.permitted_scopes(policy_admin, SETTINGS_WRITE) == [IN_SCOPE]


def test_the_outsider_may_do_nothing(outsider):
    assert authz.grants_for(outsider) == []
    assert authz.permitted_scopes(outsider, VM_READ) == []
    assert not authz.has_permission(outsider, VM_READ, VM_IN)


def test_superusers_may_do_everything_everywhere(breakglass_admin):
    assert authz.has_permission(breakglass_admin, JIT_POLICY_WRITE, VM_OUT)
    assert authz.permitted_scopes(breakglass_admin, "JitPortal/anything") == ["/"]


def test_anonymous_and_inactive_users_may_do_nothing(requester, django_user_model):
    from django.contrib.auth.models import AnonymousUser

    assert not authz.has_permission(AnonymousUser(), VM_READ, VM_IN)
    requester.is_active = False
    requester.save()
    assert not authz.has_permission(fresh(requester), VM_READ, VM_IN)


def test_a_group_grants_its_role_at_its_resource_group(requester, persona_mappings):
    RoleMapping.objects.filter(source_kind="app_role").delete()
    user = fresh(requester)
    web_vm = f"{IN_SCOPE}/resourceGroups/RG-WEB-PROD/providers/Microsoft.Compute/virtualMachines/web-01"
    assert authz.has_permission(user, JIT_INITIATE, web_vm)
    assert not authz.has_permission(user, JIT_INITIATE, VM_IN)
    assert not authz.has_permission(user, JIT_INITIATE, WEB_VM_ON_DEV)
    (grant,) = authz.grants_for(user)
    assert (grant.source_kind, grant.source_value) == ("group", WEB_GROUP)


def test_a_deleted_mapping_removes_access_at_the_next_request(requester):
    assert authz.has_permission(requester, JIT_INITIATE, VM_IN)
    RoleMapping.objects.filter(source_value="JIT.Requester").delete()
    assert not authz.has_permission(fresh(requester), JIT_INITIATE, VM_IN)


def test_lost_claims_remove_access_at_the_next_sign_in(requester):
    claims = PERSONAS["requester"].claims() | {"roles": [], "groups": []}
    services.user_sign_in_record(claims=claims)
    assert not authz.has_permission(fresh(requester), JIT_INITIATE, VM_IN)


def test_a_mapping_for_another_tenant_grants_nothing(outsider):
    RoleMapping.objects.create(source_kind="app_role", source_value="JIT.Extra", role="reader", scope=IN_SCOPE,
                               tenant_id="5b1f2d3c-7e8a-4b9c-8d0e-1f2a3b4c5d6e")
    services.user_sign_in_record(claims=PERSONAS["outsider"].claims() | {"roles": ["JIT.Extra"]})
    assert not authz.has_permission(fresh(outsider), VM_READ, VM_IN)
    RoleMapping.objects.create(source_kind="app_role", source_value="JIT.Extra", role="reader", scope=IN_SCOPE,
                               tenant_id=PERSONAS["outsider"].claims()["tid"].upper())
    assert authz.has_permission(fresh(outsider), VM_READ, VM_IN)


def test_a_tenant_taken_off_the_allowed_list_grants_nothing(requester, settings):
    assert authz.has_permission(fresh(requester), JIT_INITIATE, VM_IN)
    settings.ENTRA_ALLOWED_TENANTS = ["5b1f2d3c-7e8a-4b9c-8d0e-1f2a3b4c5d6e"]
    assert not authz.has_permission(fresh(requester), JIT_INITIATE, VM_IN)  # an API token, the CLI, a task


def test_grants_are_computed_once_per_request(requester, django_assert_num_queries):
    user = fresh(requester)
    with django_assert_num_queries(2):
        for _ in range(5):
            authz.has_permission(user, JIT_INITIATE, VM_IN)
            authz.permitted_scopes(user, VM_READ)


class TestRestrict:
    """restrict() filters in the database, by resource id prefix or by subscription/group fields."""

    @pytest.fixture
    def mappings(self, persona_mappings):
        rows = {}
        for key, scope in {
            "in_sub": IN_SCOPE,
            "in_rg": f"{IN_SCOPE}/resourceGroups/rg-data-prod",
            "in_vm": VM_IN,
            "in_vm_upper": VM_IN.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"),
            "out_sub": OUT_OF_SCOPE,
            "out_vm": VM_OUT,
            "lookalike": IN_SCOPE[:-1] + "10",
        }.items():
            rows[key] = RoleMapping.objects.create(source_kind="group", source_value=f"g-{key}", role="reader",
                                                   scope=scope)
        return rows

    def keys(self, queryset, mappings):
        ids = set(queryset.values_list("pk", flat=True))
        return {k for k, m in mappings.items() if m.pk in ids}

    def test_it_returns_only_rows_in_scope(self, mappings, policy_admin):
        restricted = authz.restrict(RoleMapping.objects.all(), policy_admin, SETTINGS_WRITE)
        assert self.keys(restricted, mappings) == {"in_sub", "in_rg", "in_vm", "in_vm_upper"}

    def test_it_returns_nothing_without_the_action(self, mappings, requester):
        assert not authz.restrict(RoleMapping.objects.all(), requester, SETTINGS_WRITE).exists()

    def test_it_returns_everything_for_superusers(self, mappings, breakglass_admin):
        restricted = authz.restrict(RoleMapping.objects.all(), breakglass_admin, SETTINGS_WRITE)
        assert restricted.count() == RoleMapping.objects.count()

    def test_a_resource_group_grant_covers_its_rows_only(self, mappings, requester):
        RoleMapping.objects.create(source_kind="app_role", source_value="JIT.Requester", role="policy_admin",
                                   scope=f"{IN_SCOPE}/resourceGroups/RG-DATA-PROD")
        restricted = authz.restrict(RoleMapping.objects.all(), fresh(requester), SETTINGS_WRITE)
        assert self.keys(restricted, mappings) == {"in_rg", "in_vm", "in_vm_upper"}

    def test_a_grant_covers_its_rows_in_any_case_whatever_their_letters(self, mappings, requester):
        """As ``has_permission`` (and PostgreSQL) do: SQLite's LIKE folds ASCII only, so a mapping at RG-MÜNCHEN
        left out the rows spelling it rg-münchen (an admin could add such a mapping, and then neither see, change nor
        delete it)."""
        RoleMapping.objects.create(source_kind="app_role", source_value="JIT.Requester", role="policy_admin",
                                   scope=f"{IN_SCOPE}/resourceGroups/RG-MÜNCHEN")
        munich = {key: RoleMapping.objects.create(source_kind="group", source_value=f"g-{key}", role="reader",
                                                  scope=f"{IN_SCOPE}/resourceGroups/{rg}")
                  for key, rg in {"munich": "rg-münchen", "munich_vm": "Rg-München/providers/Microsoft.Compute/"
                                  "virtualMachines/vm-1", "lookalike": "rg-münchen2"}.items()}
        user = fresh(requester)
        assert authz.has_permission(user, SETTINGS_WRITE, munich["munich_vm"].scope)
        restricted = authz.restrict(RoleMapping.objects.all(), user, SETTINGS_WRITE)
        assert self.keys(restricted, munich) == {"munich", "munich_vm"}

    def test_it_builds_one_query(self, mappings, policy_admin, django_assert_num_queries):
        user = fresh(policy_admin)
        authz.grants_for(user)
        with django_assert_num_queries(1):
            list(authz.restrict(RoleMapping.objects.all(), user, SETTINGS_WRITE))

    def test_subscription_and_group_fields_filter_by_equality(self, policy_admin):
        query = authz.restrict(RoleMapping.objects.all(), policy_admin, SETTINGS_WRITE,
                               subscription_field="scope", resource_group_field="description").query
        sql = str(query)  # plain equality with the lower-cased place, which the columns' indexes serve
        assert "UPPER" not in sql and "LIKE" not in sql
        assert f'"scope" = {IN_SCOPE.rsplit("/", 1)[1].lower()}' in sql

    def test_get_for_user_or_404_hides_out_of_scope_rows(self, mappings, policy_admin):
        found = authz.get_for_user_or_404(RoleMapping.objects.all(), policy_admin, SETTINGS_WRITE,
                                          pk=mappings["in_vm"].pk)
        assert found == mappings["in_vm"]
        with pytest.raises(Http404):
            authz.get_for_user_or_404(RoleMapping.objects.all(), policy_admin, SETTINGS_WRITE,
                                      pk=mappings["out_vm"].pk)
        with pytest.raises(Http404):
            authz.get_for_user_or_404(RoleMapping.objects.all(), policy_admin, SETTINGS_WRITE, pk="nope")


def test_a_token_with_too_many_groups_is_recorded_as_such(client, outsider):
    from django.urls import reverse

    claims = PERSONAS["outsider"].claims() | {"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {}}}
    services.user_sign_in_record(claims=claims)
    client.force_login(outsider)
    assert 'id="groups-overage"' in client.get(reverse("my_access")).content.decode()



def test_the_session_user_comes_with_the_claims_authorization_reads(client, django_assert_num_queries):
    """``EntraBackend.get_user`` loads the latest sign-in's claims with the user; a new sign-in is seen at once."""
    from django.contrib.auth import get_user

    from accounts.backends import ENTRA_BACKEND

    RoleMapping.objects.create(source_kind="app_role", source_value="JIT.Reader", role="reader", scope=IN_SCOPE)
    claims = {"tid": "8a0e7c31-4a8e-4d8b-9d2a-6f6a1b2c3d4e", "oid": "8a0e7c31-0000-4000-8000-0000000000aa",
              "preferred_username": "rita@contoso.example", "roles": ["JIT.Reader"], "groups": []}
    client.force_login(services.user_sign_in_record(claims=claims), backend=ENTRA_BACKEND)
    request = client.get("/healthz").wsgi_request
    with django_assert_num_queries(1):  # the user with their claims (the session is loaded already)
        user = get_user(request)
    with django_assert_num_queries(1):  # the mappings only
        assert authz.has_permission(user, VM_READ, IN_SCOPE)
    services.user_sign_in_record(claims={**claims, "roles": []})  # Entra ID took the role away
    assert not authz.has_permission(get_user(request), VM_READ, IN_SCOPE)


def test_grants_worked_out_for_many_users_at_once_are_each_ones_own(persona_mappings, django_assert_num_queries):
    """``prime_grants`` (the approvers of a request) gives every user the grants ``compute_grants`` gives them:
    app roles and groups (as the token spells them), mappings for any tenant or theirs (in any case), none for
    another tenant or an unknown role, none without a sign-in; two queries however many users."""
    other_tenant = "5b1f2d3c-7e8a-4b9c-8d0e-1f2a3b4c5d6e"
    tenant = PERSONAS["outsider"].claims()["tid"]
    for value, role, tenant_id in (("JIT.Extra", "reader", other_tenant), ("JIT.Extra", "auditor", tenant.upper()),
                                   ("JIT.Extra", "no-such-role", ""), ("JIT.Requester", "approver", tenant)):
        RoleMapping.objects.create(source_kind="app_role", source_value=value, role=role, scope=IN_SCOPE,
                                   tenant_id=tenant_id)
    users = [services.user_sign_in_record(claims=PERSONAS[name].claims()) for name in PERSONAS]
    users.append(services.user_sign_in_record(claims=PERSONAS["outsider"].claims() | {
        "oid": "8a0e7c31-0000-4000-8000-000000000099", "preferred_username": "extra@contoso.example",
        "roles": ["JIT.Extra"], "groups": [WEB_GROUP.upper()]}))
    users.append(type(users[0]).objects.create(username="never-signed-in@contoso.example"))
    expected = {user.pk: authz.compute_grants(fresh(user)) for user in users}
    assert any(expected.values()) and not all(expected.values())
    primed = [fresh(user) for user in users]
    with django_assert_num_queries(2):
        authz.prime_grants(primed)
    with django_assert_num_queries(0):
        assert {user.pk: authz.grants_for(user) for user in primed} == expected
