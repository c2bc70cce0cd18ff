"""Microsoft.Resources: the subscriptions of the token's tenant its caller holds a role on, and resource groups."""
from __future__ import annotations

from emulator.arm.context import ArmContext, paged
from emulator.arm.router import router
from emulator.errors import ArmError


@router.route("GET", "/subscriptions")
def list_subscriptions(ctx: ArmContext):
    tenant = (ctx.claims.get("tid") or "").lower()
    subs = [s for s in ctx.state.subscriptions.values()
            if (not tenant or s["tenantId"].lower() == tenant) and ctx.may_access(s["subscriptionId"])]
    return paged([{**s, "id": f"/subscriptions/{s['subscriptionId']}"} for s in subs], ctx.state.page_size)


@router.route("GET", "/subscriptions/{sub}")
def get_subscription(ctx: ArmContext, sub: str):
    found = ctx.require_subscription(sub)
    return {**found, "id": f"/subscriptions/{found['subscriptionId']}"}


def _group(sub: str, group: dict) -> dict:
    return {"id": f"/subscriptions/{sub}/resourceGroups/{group['name']}", "name": group["name"],
            "type": "Microsoft.Resources/resourceGroups", "location": group["location"],
            "properties": {"provisioningState": "Succeeded"}}


@router.route("GET", "/subscriptions/{sub}/resourcegroups")
def list_groups(ctx: ArmContext, sub: str):
    ctx.require_subscription(sub)
    return paged([_group(sub, g) for g in ctx.state.resource_groups.get(sub.lower(), {}).values()],
                 ctx.state.page_size)


@router.route("GET", "/subscriptions/{sub}/resourcegroups/{rg}")
def get_group(ctx: ArmContext, sub: str, rg: str):
    group = ctx.state.resource_group(sub, rg)
    ctx.require_subscription(sub)
    if group is None:
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
    return _group(sub, group)
