"""Custom role definitions written and read through the real AuthorizationManagementClient."""
from __future__ import annotations

import uuid

import pytest

from cloud.errors import Invalid, NotFound
from tests.cloud.conftest import PROD

SCOPE = f"/subscriptions/{PROD}"
ACTIONS = ("Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
           "Microsoft.Compute/virtualMachines/read")


def test_a_role_definition_put_reads_back_with_its_permissions(gateway):
    role_id = str(uuid.uuid4())

    written = gateway.put_role_definition(SCOPE, role_id, role_name="JIT Requester (test)", actions=ACTIONS,
                                          assignable_scopes=[SCOPE], description="Requests JIT access.")
    read = gateway.get_role_definition(SCOPE, role_id)

    assert written == read
    assert read.id == f"{SCOPE}/providers/Microsoft.Authorization/roleDefinitions/{role_id}"
    assert (read.name, read.role_name, read.role_type) == (role_id, "JIT Requester (test)", "CustomRole")
    assert (read.actions, read.not_actions, read.assignable_scopes) == (ACTIONS, (), (SCOPE,))


def test_putting_a_role_again_updates_it_in_place(gateway):
    role_id = str(uuid.uuid4())
    gateway.put_role_definition(SCOPE, role_id, role_name="JIT Reader (test)", actions=ACTIONS[:1],
                                assignable_scopes=[SCOPE])

    updated = gateway.put_role_definition(SCOPE, role_id, role_name="JIT Reader (test)", actions=ACTIONS,
                                          assignable_scopes=[SCOPE, f"{SCOPE}/resourceGroups/rg-web-prod"])

    assert updated.actions == ACTIONS and len(updated.assignable_scopes) == 2


def test_a_second_role_with_the_same_name_is_invalid(gateway):
    gateway.put_role_definition(SCOPE, str(uuid.uuid4()), role_name="Duplicate", actions=ACTIONS,
                                assignable_scopes=[SCOPE])

    with pytest.raises(Invalid) as caught:
        gateway.put_role_definition(SCOPE, str(uuid.uuid4()), role_name="Duplicate", actions=ACTIONS,
                                    assignable_scopes=[SCOPE])

    assert (caught.value.status, caught.value.code) == (409, "RoleDefinitionWithSameNameExists")


def test_a_deleted_role_is_not_found(gateway):
    role_id = str(uuid.uuid4())
    gateway.put_role_definition(SCOPE, role_id, role_name="Short lived", actions=ACTIONS, assignable_scopes=[SCOPE])

    gateway.delete_role_definition(SCOPE, role_id)

    with pytest.raises(NotFound):
        gateway.get_role_definition(SCOPE, role_id)
