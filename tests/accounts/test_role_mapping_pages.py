"""Role mappings under Settings: admins list, add, change and delete mappings at scopes they administer."""
import pytest
from django.urls import reverse

from accounts.models import RoleMapping
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE

pytestmark = pytest.mark.django_db

RG = f"{IN_SCOPE}/resourceGroups/rg-web-prod"


def form_data(**overrides):
    data = {"source_kind": "app_role", "source_value": "JIT.Reader", "tenant_id": "", "role": "reader",
            "scope": RG, "description": "web readers"}
    return data | overrides


def test_the_list_shows_only_mappings_in_the_admins_scope(client, policy_admin):
    RoleMapping.objects.create(source_kind="app_role", source_value="JIT.Auditor", role="auditor",
                               scope=OUT_OF_SCOPE, description="dev-test auditors")
    client.force_login(policy_admin)
    body = client.get(reverse("accounts:rolemapping_list")).content.decode()
    assert "JIT.Requester in Production" in body
    assert "dev-test auditors" not in body


def test_the_list_searches_and_filters(client, breakglass_admin, persona_mappings):
    client.force_login(breakglass_admin)
    body = client.get(reverse("accounts:rolemapping_list"), {"q": "rg-web-prod"}).content.decode()
    assert "JIT requesters - web" in body and "JIT.Auditor in Production" not in body
    body = client.get(reverse("accounts:rolemapping_list"), {"role": "auditor"}).content.decode()
    assert "JIT.Auditor in Production" in body and "JIT.Requester in Production" not in body


def test_searching_or_filtering_keeps_the_sort_and_a_bad_filter_value_is_named(client, breakglass_admin,
                                                                              persona_mappings):
    import re

    client.force_login(breakglass_admin)
    body = client.get(reverse("accounts:rolemapping_list"), {"sort": "-scope", "role": "reader", "q": "JIT"}
                      ).content.decode()
    forms = re.findall(r'<form[^>]* method="get"[^>]*>.*?</form>', body, re.S)
    assert len(forms) == 2
    for form in forms:
        assert '<input type="hidden" name="sort" value="-scope">' in form
    body = client.get(reverse("accounts:rolemapping_list"), {"role": "<root>"}).content.decode()
    assert ('<li id="id_role_error"><a href="#id_role">Role: Select a valid choice. &lt;root&gt; is not one of the '
            'available choices.</a> The filter was left out.</li>') in body
    assert 'id="id_role"' in body and "There is a problem with the filters" in body


def test_a_search_longer_than_any_mapping_is_refused_in_words_not_a_crash(client, breakglass_admin,
                                                                         persona_mappings):
    """SQLite refuses a LIKE pattern over 50,000 bytes: such a search was a 500."""
    client.force_login(breakglass_admin)
    body = client.get(reverse("accounts:rolemapping_list"), {"q": "a" * 60_000}).content.decode()
    assert "Search: Ensure this value has at most 200 characters (it has 60000).</a> The filter was left out." in body


def test_the_list_filters_are_labelled(client, breakglass_admin):
    client.force_login(breakglass_admin)
    body = client.get(reverse("accounts:rolemapping_list")).content.decode()
    for name in ("source_kind", "role"):
        assert f'id="id_{name}"' in body and f'<label for="id_{name}"' in body


def test_the_list_costs_the_same_queries_for_many_rows(client, breakglass_admin, django_assert_max_num_queries):
    client.force_login(breakglass_admin)
    for n in range(60):
        RoleMapping.objects.create(source_kind="group", source_value=f"00000000-0000-4000-8000-{n:012d}",
                                   role="reader", scope=IN_SCOPE)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("accounts:rolemapping_list")).status_code == 200


def test_an_admin_adds_a_mapping_and_it_records_who(client, policy_admin):
    client.force_login(policy_admin)
    response = client.post(reverse("accounts:rolemapping_add"), form_data(scope=RG.upper().replace(
        "/SUBSCRIPTIONS/", "/subscriptions/").replace("/RESOURCEGROUPS/", "/resourceGroups/")))
    assert response.status_code == 302
    mapping = RoleMapping.objects.get(description="web readers")
    assert mapping.scope == f"{IN_SCOPE}/resourceGroups/RG-WEB-PROD"
    assert mapping.created_by == policy_admin and mapping.updated_by == policy_admin


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"scope": "/subscriptions/nope"}, "scope", "A scope is"),
        ({"scope": OUT_OF_SCOPE}, "scope", "only map roles at scopes you administer"),
        ({"source_value": "  "}, "source_value", "required"),
        ({"source_value": "JIT.Typo"}, "source_value", "not an app role"),
        ({"source_kind": "group", "source_value": "web people"}, "source_value", "object id"),
        ({"role": "owner"}, "role", "not one of the available choices"),
        ({"tenant_id": "11111111-2222-3333-4444-555555555555"}, "tenant_id", "not one the portal accepts"),
    ],
)
def test_it_explains_what_is_wrong_with_a_mapping(client, policy_admin, overrides, field, message):
    client.force_login(policy_admin)
    response = client.post(reverse("accounts:rolemapping_add"), form_data(**overrides))
    assert response.status_code == 400
    errors = " ".join(response.context["form"].errors.get(field, []))
    assert message in errors
    assert not RoleMapping.objects.filter(description="web readers").exists()


def test_a_duplicate_mapping_is_refused(client, policy_admin):
    client.force_login(policy_admin)
    client.post(reverse("accounts:rolemapping_add"), form_data())
    response = client.post(reverse("accounts:rolemapping_add"), form_data())
    assert response.status_code == 400
    assert "already exists" in response.content.decode()


def test_a_group_id_is_stored_in_lower_case(client, policy_admin):
    client.force_login(policy_admin)
    client.post(reverse("accounts:rolemapping_add"), form_data(
        source_kind="group", source_value="9C1D2E3F-0000-4000-8000-0000000009AA"))
    assert RoleMapping.objects.filter(source_value="9c1d2e3f-0000-4000-8000-0000000009aa").exists()


def test_an_admin_changes_a_mapping(client, policy_admin, persona_mappings):
    client.force_login(policy_admin)
    mapping = persona_mappings[0]
    response = client.post(reverse("accounts:rolemapping_edit", args=[mapping.pk]),
                           form_data(source_value=mapping.source_value, role="reader", scope=RG,
                                     description="narrowed"))
    assert response.status_code == 302
    mapping.refresh_from_db()
    assert (mapping.role, mapping.scope, mapping.description) == ("reader", RG, "narrowed")


def test_an_admin_cannot_move_a_mapping_out_of_their_scope(client, policy_admin, persona_mappings):
    client.force_login(policy_admin)
    mapping = persona_mappings[0]
    response = client.post(reverse("accounts:rolemapping_edit", args=[mapping.pk]),
                           form_data(source_value=mapping.source_value, scope=OUT_OF_SCOPE))
    assert response.status_code == 400
    mapping.refresh_from_db()
    assert mapping.scope == IN_SCOPE


def test_deleting_needs_a_post_and_removes_access_at_the_next_request(client, policy_admin, requester,
                                                                      persona_mappings):
    from accounts.authz import has_permission
    from accounts.roles import JIT_INITIATE

    mapping = RoleMapping.objects.get(source_value="JIT.Requester")
    client.force_login(policy_admin)
    url = reverse("accounts:rolemapping_delete", args=[mapping.pk])
    assert "Yes, delete" in client.get(url).content.decode()
    assert RoleMapping.objects.filter(pk=mapping.pk).exists()
    assert client.post(url).status_code == 302
    assert not RoleMapping.objects.filter(pk=mapping.pk).exists()
    vm = f"{IN_SCOPE}/resourceGroups/rg-data-prod/providers/Microsoft.Compute/virtualMachines/db-01"
    assert not has_permission(type(requester).objects.get(pk=requester.pk), JIT_INITIATE, vm)


def test_the_services_refuse_an_actor_who_does_not_administer_the_mappings_scope(policy_admin, requester):
    from django.core.exceptions import PermissionDenied

    from accounts import services
    from accounts.scopes import normalize_scope

    other = RoleMapping.objects.create(source_kind="app_role", source_value="JIT.Auditor", role="auditor",
                                       scope=OUT_OF_SCOPE)
    fields = {k: v for k, v in form_data().items() if k != "scope"}
    with pytest.raises(PermissionDenied):
        services.role_mapping_create(actor=policy_admin, scope=OUT_OF_SCOPE, **fields)
    with pytest.raises(PermissionDenied):
        services.role_mapping_create(actor=requester, scope=RG, **fields)  # in scope, but no settings role there
    with pytest.raises(PermissionDenied):  # a mapping outside their scope, even moved into it
        services.role_mapping_update(actor=policy_admin, mapping=other, scope=RG, **fields)
    with pytest.raises(PermissionDenied):
        services.role_mapping_delete(actor=policy_admin, mapping=other)
    mine = services.role_mapping_create(actor=policy_admin, scope=RG, **fields)
    other.scope = RG  # what a form validated on this instance leaves on it: the stored scope is what counts
    with pytest.raises(PermissionDenied):
        services.role_mapping_delete(actor=policy_admin, mapping=other)
    with pytest.raises(PermissionDenied):  # moved out of their scope
        services.role_mapping_update(actor=policy_admin, mapping=mine, scope=OUT_OF_SCOPE, **fields)
    other.refresh_from_db()
    mine.refresh_from_db()
    assert (other.scope, mine.scope) == (OUT_OF_SCOPE, normalize_scope(RG))
    assert RoleMapping.objects.filter(scope=OUT_OF_SCOPE).count() == 1


def test_mappings_out_of_scope_are_not_found(client, policy_admin):
    other = RoleMapping.objects.create(source_kind="app_role", source_value="JIT.Auditor", role="auditor",
                                       scope=OUT_OF_SCOPE)
    client.force_login(policy_admin)
    for name in ("accounts:rolemapping_edit", "accounts:rolemapping_delete"):
        assert client.get(reverse(name, args=[other.pk])).status_code == 404
        assert client.post(reverse(name, args=[other.pk])).status_code == 404
    assert RoleMapping.objects.filter(pk=other.pk).exists()


def test_the_django_admin_edits_mappings_through_the_same_rules(client, breakglass_admin):
    client.force_login(breakglass_admin)
    response = client.post(reverse("admin:accounts_rolemapping_add"), form_data(scope="/subscriptions/bad"))
    assert response.status_code == 200
    assert "A scope is" in response.content.decode()
    response = client.post(reverse("admin:accounts_rolemapping_add"), form_data())
    assert response.status_code == 302
    assert RoleMapping.objects.get(description="web readers").created_by == breakglass_admin


def test_my_access_says_where_each_role_comes_from(client, requester):
    client.force_login(requester)
    body = client.get(reverse("my_access")).content.decode()
    assert "JIT requester" in body
    assert "Entra app role JIT.Requester" in body
    assert "Entra group 9c1d2e3f-0000-4000-8000-000000000901" in body
    assert f"{IN_SCOPE}/resourceGroups/rg-web-prod" in body
    assert "JIT.Requester in Production" in body


def test_my_access_shows_a_few_groups_and_folds_the_rest_away(client, requester):
    """All of a user's groups (251 for the demo's grace) were listed in one paragraph; the first few are shown, the
    group a role came from first, and the others behind a count."""
    import re

    from accounts.models import SignInClaims
    from tests.plugins.personas import WEB_GROUP

    others = [f"00000000-0000-4000-8000-{n:012d}" for n in range(250)]
    SignInClaims.objects.filter(user=requester).update(groups=[*others, WEB_GROUP], groups_overage=True)
    client.force_login(requester)
    body = client.get(reverse("my_access")).content.decode()
    shown = re.search(r'<span id="groups-shown">(.*?)</span>', body, re.S).group(1)
    assert shown.split(", ") == [WEB_GROUP, *others[:4]]
    more = re.search(r'<details id="groups-more"><summary>and 246 more</summary>(.*?)</details>', body, re.S)
    assert more and more.group(1).split(", ") == others[4:]
    assert "251 groups, read from Microsoft Graph at sign-in" in " ".join(body.split())

    SignInClaims.objects.filter(user=requester).update(groups=[WEB_GROUP], groups_overage=False)
    body = client.get(reverse("my_access")).content.decode()
    assert f'<span id="groups-shown">{WEB_GROUP}</span>' in body and "groups-more" not in body


def test_my_access_tells_an_outsider_they_have_no_roles(client, outsider):
    client.force_login(outsider)
    body = client.get(reverse("my_access")).content.decode()
    assert 'id="no-access"' in body


def test_mapping_changes_and_sign_ins_are_in_the_audit_trail(client, policy_admin):
    from audit.models import AuditEvent

    client.force_login(policy_admin)
    client.post(reverse("accounts:rolemapping_add"), form_data())
    mapping = RoleMapping.objects.get(description="web readers")
    client.post(reverse("accounts:rolemapping_edit", args=[mapping.pk]), form_data(role="auditor",
                                                                                   source_value="JIT.Auditor"))
    client.post(reverse("accounts:rolemapping_delete", args=[mapping.pk]))
    events = list(AuditEvent.objects.filter(target_type="role_mapping").order_by("id"))
    assert [e.action for e in events] == ["role_mapping.create", "role_mapping.update", "role_mapping.delete"]
    assert events[1].before["role"] == "reader" and events[1].after["role"] == "auditor"
    assert events[2].after is None and events[2].before["source_value"] == "JIT.Auditor"
    assert {e.actor_id for e in events} == {policy_admin.pk}
    assert events[0].subscription_id == IN_SCOPE.rsplit("/", 1)[1] and events[0].resource_group == "rg-web-prod"
    assert AuditEvent.objects.filter(action="user.sign_in", actor=policy_admin).exists()


def test_the_trail_names_the_client_behind_a_trusted_proxy_not_the_proxy(client, policy_admin, settings):
    from audit.models import AuditEvent

    settings.ACCESS_TRUSTED_PROXIES = ["10.0.0.0/8"]
    client.force_login(policy_admin)
    response = client.post(reverse("accounts:rolemapping_add"), form_data(), REMOTE_ADDR="10.0.0.5",
                           HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9")
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action__startswith="role_mapping").latest("id").client_ip == "203.0.113.9"


def test_the_same_mapping_added_by_another_admin_at_that_moment_is_said_not_a_500(client, policy_admin,
                                                                                monkeypatch):
    """The form checks that no such mapping exists; another admin's save between that check and this one met the
    database's unique constraint (IntegrityError)."""
    client.force_login(policy_admin)
    check = RoleMapping.validate_constraints

    def another_admin_saves_meanwhile(mapping, *args, **kwargs):
        check(mapping, *args, **kwargs)
        RoleMapping.objects.create(**form_data())

    monkeypatch.setattr(RoleMapping, "validate_constraints", another_admin_saves_meanwhile)
    response = client.post(reverse("accounts:rolemapping_add"), form_data())
    assert response.status_code == 400
    assert "The same role mapping was added a moment ago (by another admin)" in response.content.decode()
    assert RoleMapping.objects.filter(source_value="JIT.Reader", scope=RG).count() == 1


def test_a_mapping_deleted_by_another_admin_while_it_is_edited_is_said_not_a_500(client, policy_admin,
                                                                               monkeypatch):
    mapping = RoleMapping.objects.create(**form_data())
    client.force_login(policy_admin)
    check = RoleMapping.validate_constraints

    def another_admin_deletes_meanwhile(row, *args, **kwargs):
        check(row, *args, **kwargs)
        RoleMapping.objects.filter(pk=mapping.pk).delete()

    monkeypatch.setattr(RoleMapping, "validate_constraints", another_admin_deletes_meanwhile)
    response = client.post(reverse("accounts:rolemapping_edit", args=[mapping.pk]),
                           form_data(description="renamed"), follow=True)
    assert response.redirect_chain == [(reverse("accounts:rolemapping_list"), 302)]
    assert "This role mapping was deleted a moment ago (by another admin): nothing was saved." in (
        response.content.decode())
    assert not RoleMapping.objects.filter(pk=mapping.pk).exists()
