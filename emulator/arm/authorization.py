"""Microsoft.Authorization role definitions (2022-04-01) at any scope, for the least-privilege role generator."""
from __future__ import annotations

import re

from flask import request

from emulator.arm.context import ArmContext, paged
from emulator.arm.router import router
from emulator.errors import ArmError, bad_request
from emulator.timeutil import iso

BASE = "{scope*}/providers/Microsoft.Authorization/roleDefinitions"
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def _role_id(scope: str, name: str) -> str:
    return f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{name}"


def _check_scope(ctx: ArmContext, scope: str) -> None:
    parts = [p for p in scope.split("/") if p]
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        ctx.require_subscription(parts[1])
        if len(parts) >= 4 and parts[2].lower() == "resourcegroups":
            ctx.require_resource_group(parts[1], parts[3])


@router.route("GET", BASE)
def list_roles(ctx: ArmContext, scope: str):
    _check_scope(ctx, scope)
    prefix = scope.lower()
    roles = [r for r in ctx.state.role_definitions.values()
             if not scope or r["id"].lower().startswith(prefix + "/providers/")
             or any(s.lower() == prefix or s.lower().startswith(prefix + "/")
                    for s in r["properties"]["assignableScopes"])]
    flt = request.args.get("$filter")
    if flt:
        match = re.fullmatch(r"\s*(roleName|type)\s+eq\s+'(.*)'\s*", flt, re.IGNORECASE)
        if not match:
            raise bad_request("InvalidFilter", "Only roleName eq '...' or type eq '...' is supported.")
        key = "roleName" if match.group(1).lower() == "rolename" else "type"
        roles = [r for r in roles if r["properties"].get(key, "").lower() == match.group(2).lower()]
    return paged(roles, ctx.state.page_size)


@router.route("GET", BASE + "/{name}")
def get_role(ctx: ArmContext, scope: str, name: str):
    _check_scope(ctx, scope)
    role = ctx.state.role_definitions.get(_role_id(scope, name).lower())
    if role is None:
        raise ArmError(404, "RoleDefinitionDoesNotExist", f"The role definition '{name}' could not be found.")
    return role


@router.route("PUT", BASE + "/{name}")
def put_role(ctx: ArmContext, scope: str, name: str):
    _check_scope(ctx, scope)
    if not _GUID.match(name):
        raise bad_request("RoleDefinitionIdNotGuid", f"The role definition id '{name}' must be a GUID.")
    body = ctx.json_body()
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict) or not isinstance(props.get("roleName"), str) or not props["roleName"].strip():
        raise bad_request("RoleDefinitionNameNullOrEmpty", "properties.roleName is required.")
    scopes = props.get("assignableScopes")
    if not isinstance(scopes, list) or not scopes:
        raise bad_request("InvalidAssignableScopes", "properties.assignableScopes must list at least one scope.")
    permissions = props.get("permissions")
    if not isinstance(permissions, list) or not all(isinstance(p, dict) for p in permissions):
        raise bad_request("InvalidPermissions", "properties.permissions must be a list of objects.")
    rid = _role_id(scope, name)
    # A custom role's GUID is unique in the tenant: put at another scope, it is the same definition.
    same = next((r for r in ctx.state.role_definitions.values() if r["name"].lower() == name.lower()), None)
    rid = same["id"] if same is not None else rid
    for other in ctx.state.role_definitions.values():
        if other["id"].lower() != rid.lower() and other["properties"]["roleName"].lower() == \
                props["roleName"].lower():
            raise ArmError(409, "RoleDefinitionWithSameNameExists",
                           f"A custom role with the same name '{props['roleName']}' already exists.")
    existing = ctx.state.role_definitions.get(rid.lower())
    now = iso(ctx.state.now())
    role = {
        "id": rid, "name": name, "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": props["roleName"], "type": "CustomRole", "description": props.get("description", ""),
            "assignableScopes": scopes,
            "permissions": [{"actions": p.get("actions", []), "notActions": p.get("notActions", []),
                             "dataActions": p.get("dataActions", []), "notDataActions": p.get("notDataActions", [])}
                            for p in permissions],
            "createdOn": existing["properties"]["createdOn"] if existing else now, "updatedOn": now,
            "createdBy": existing["properties"]["createdBy"] if existing else ctx.claims.get("oid", ""),
            "updatedBy": ctx.claims.get("oid", ""),
        },
    }
    ctx.state.role_definitions[rid.lower()] = role
    return role, 201  # the spec (and the SDK) know only 201 for create and update alike


@router.route("DELETE", BASE + "/{name}")
def delete_role(ctx: ArmContext, scope: str, name: str):
    _check_scope(ctx, scope)
    role = ctx.state.role_definitions.pop(_role_id(scope, name).lower(), None)
    return (role, 200) if role else (None, 204)


