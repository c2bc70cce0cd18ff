"""Settings → Azure custom roles: least-privilege definitions for scopes the user administers, shown and
downloadable (the seed's Set-JitLeastPrivilegedRole)."""
from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from accounts.roles import ROLES
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE

pytestmark = pytest.mark.django_db
URL = reverse("accounts:role_definitions")


def test_the_page_starts_from_the_scopes_the_admin_administers(client, policy_admin):
    client.force_login(policy_admin)
    page = client.get(URL)
    assert page.status_code == 200
    assert page.context["form"]["scopes"].value() == IN_SCOPE
    assert 'id="role-definitions"' not in page.content.decode()


def test_it_shows_each_roles_definition_and_downloads_it(client, policy_admin):
    client.force_login(policy_admin)
    group = f"{IN_SCOPE}/resourceGroups/rg-web-prod"
    page = client.get(URL, {"scopes": group, "roles": ["requester", "policy_admin"], "suffix": "contoso"})
    text = page.content.decode()
    assert page.status_code == 200
    assert "JIT Requester (contoso)" in text and "JIT Policy Admin (contoso)" in text and "JIT Reader" not in text
    assert "az role definition create --role-definition @jit-requester.json" in text
    subscription = IN_SCOPE.rsplit("/", 1)[1]
    # The portal's command creates the same roles with the same names as the files shown.
    assert (f"python manage.py jit_roles --scope {group} --role requester --role policy_admin --suffix contoso "
            f"--apply --subscription {subscription}") in text
    download = client.get(URL, {"scopes": group, "roles": ["requester", "policy_admin"], "suffix": "contoso",
                                "download": "requester"})
    assert download["Content-Disposition"] == 'attachment; filename="jit-requester.json"'
    definition = json.loads(download.content)  # the shape `az role definition create` reads
    assert (definition["Name"], definition["IsCustom"]) == ("JIT Requester (contoso)", True)
    assert definition["AssignableScopes"] == [group]
    assert definition["Actions"] == list(ROLES["requester"].azure_actions) and definition["NotActions"] == []


def test_the_portal_command_quotes_a_suffix_with_spaces_and_keeps_an_empty_one(client, policy_admin):
    client.force_login(policy_admin)
    text = client.get(URL, {"scopes": IN_SCOPE, "roles": ["reader", "requester", "policy_admin"],
                            "suffix": "Contoso Ops"}).content.decode()
    assert f"jit_roles --scope {IN_SCOPE} --suffix &#x27;Contoso Ops&#x27; --apply" in text
    text = client.get(URL, {"scopes": IN_SCOPE, "roles": ["reader"], "suffix": ""}).content.decode()
    assert "<h3>JIT Reader <a" in text
    assert f"jit_roles --scope {IN_SCOPE} --role reader --suffix &#x27;&#x27; --apply" in text


@pytest.mark.parametrize(("scopes", "suffix", "message"), [
    (OUT_OF_SCOPE, "x", "you may only generate roles for scopes you administer"),
    (f"{IN_SCOPE}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1", "x", "not at a VM"),
    ("not a scope", "x", "&#x27;not a scope&#x27; is not a scope: give /subscriptions/{id} or "
                         "/subscriptions/{id}/resourceGroups/{name}."),
    ("", "x", "This field is required."),
    (IN_SCOPE, "<script>alert(1)</script>", "Use at most 40 letters"),
])
def test_bad_input_is_a_400_with_the_reason(client, policy_admin, scopes, suffix, message):
    client.force_login(policy_admin)
    response = client.get(URL, {"scopes": scopes, "roles": ["reader"], "suffix": suffix, "download": "reader"})
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")
    assert message in response.content.decode()
    assert "<script>alert(1)</script>" not in response.content.decode()


def test_people_without_settings_write_get_403(client, requester, auditor):
    for user in (requester, auditor):
        client.force_login(user)
        assert client.get(URL, {"scopes": IN_SCOPE}).status_code == 403


def test_the_scopes_help_and_its_errors_name_the_same_scopes(client, policy_admin):
    """The help named subscriptions and resource groups, while a malformed scope's error offered a VM's id as well,
    which the next check then refused."""
    client.force_login(policy_admin)
    forms = "/subscriptions/{id} or /subscriptions/{id}/resourceGroups/{name}"
    page = client.get(URL).content.decode()
    assert f"One per line: {forms} (Azure assigns custom roles there, not at a VM)." in page
    vm = f"{IN_SCOPE}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
    for scopes in ("/subscriptions/nope", vm):
        text = client.get(URL, {"scopes": scopes, "roles": ["reader"], "suffix": "x"}).content.decode()
        error = re.search(r'<ul class="errorlist"[^>]*><li>(.*?)</li>', text).group(1)
        assert error.endswith(f"give {forms}."), error
        assert "virtualMachines/{name}" not in text
