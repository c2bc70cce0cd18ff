"""Microsoft.Security: JIT network access policies (2020-01-01), pricings (2024-01-01) and the legacy
security policies (2015-06-01-preview) that can switch JIT off for a subscription or resource group."""
from __future__ import annotations

import re

from flask import request

from emulator.arm.context import ArmContext, paged
from emulator.arm.router import router
from emulator.errors import ArmError, bad_request
from emulator.events import operation_events
from emulator.jit import engine
from emulator.scenarios.builders import PRICING_NAMES, pricing_resource
from emulator.timeutil import iso

JIT = "Microsoft.Security/locations/{location}/jitNetworkAccessPolicies"
SUB = "/subscriptions/{sub}"
RG = "/subscriptions/{sub}/resourceGroups/{rg}"


def _policies(ctx: ArmContext, sub: str, rg: str | None = None, location: str | None = None) -> list[dict]:
    items = ctx.state.resources.list(engine.POLICY_TYPE, sub, rg)
    if location:
        items = [p for p in items if engine.normalize_location(p["location"]) == engine.normalize_location(location)]
    return items


@router.route("GET", SUB + "/providers/Microsoft.Security/jitNetworkAccessPolicies")
def list_jit_subscription(ctx: ArmContext, sub: str):
    ctx.require_subscription(sub)
    return paged(_policies(ctx, sub), ctx.state.page_size)


@router.route("GET", SUB + "/providers/Microsoft.Security/locations/{location}/jitNetworkAccessPolicies")
def list_jit_subscription_location(ctx: ArmContext, sub: str, location: str):
    ctx.require_subscription(sub)
    return paged(_policies(ctx, sub, location=location), ctx.state.page_size)


@router.route("GET", RG + "/providers/Microsoft.Security/jitNetworkAccessPolicies")
def list_jit_group(ctx: ArmContext, sub: str, rg: str):
    ctx.require_resource_group(sub, rg)
    return paged(_policies(ctx, sub, rg), ctx.state.page_size)


@router.route("GET", RG + "/providers/Microsoft.Security/locations/{location}/jitNetworkAccessPolicies")
def list_jit_group_location(ctx: ArmContext, sub: str, rg: str, location: str):
    ctx.require_resource_group(sub, rg)
    return paged(_policies(ctx, sub, rg, location), ctx.state.page_size)


@router.route("GET", RG + "/providers/" + JIT + "/{name}")
def get_jit(ctx: ArmContext, sub: str, rg: str, location: str, name: str):
    ctx.require_resource_group(sub, rg)
    policy = ctx.state.resources.get(engine.policy_id(sub, rg, location, name))
    if policy is None:
        raise ArmError(404, "ResourceNotFound", f"The just-in-time policy '{name}' was not found.")
    return policy


@router.route("PUT", RG + "/providers/" + JIT + "/{name}")
def put_jit(ctx: ArmContext, sub: str, rg: str, location: str, name: str):
    ctx.require_resource_group(sub, rg)
    body = ctx.json_body()
    policy, _created = engine.put_policy(ctx.state, ctx.operation(sub), sub, rg, location, name, body)
    return policy, 200  # the API answers 200 for both create and update


@router.route("DELETE", RG + "/providers/" + JIT + "/{name}")
def delete_jit(ctx: ArmContext, sub: str, rg: str, location: str, name: str):
    ctx.require_resource_group(sub, rg)
    deleted = engine.delete_policy(ctx.state, ctx.operation(sub), sub, rg, location, name)
    return None, 200 if deleted else 204


@router.route("POST", RG + "/providers/" + JIT + "/{name}/{action}")
def initiate_jit(ctx: ArmContext, sub: str, rg: str, location: str, name: str, action: str):
    ctx.require_resource_group(sub, rg)
    if action.lower() != "initiate":
        raise bad_request("InvalidInitiateType", f"'{action}' is not a JIT action; the only one is 'initiate'.")
    body = ctx.json_body()
    return engine.initiate(ctx.state, ctx.operation(sub), sub, rg, location, name, body), 202


# --- pricings ------------------------------------------------------------------------------------------------
def _pricings(ctx: ArmContext, sub: str) -> dict[str, dict]:
    ctx.require_subscription(sub)
    scope = f"subscriptions/{sub.lower()}"
    plans = ctx.state.pricings.setdefault(scope, {})
    for plan in PRICING_NAMES:
        plans.setdefault(plan.lower(), pricing_resource(sub, plan, "Free"))
    return plans


@router.route("GET", SUB + "/providers/Microsoft.Security/pricings")
def list_pricings(ctx: ArmContext, sub: str):
    plans = list(_pricings(ctx, sub).values())
    wanted = request.args.get("$filter")
    if wanted:
        match = re.fullmatch(r"\s*name\s+in\s+\((.*)\)\s*", wanted, re.IGNORECASE)
        if not match:
            raise bad_request("InvalidFilter", "Only '$filter=name in (a,b)' is supported.")
        names = {n.strip().strip("'").lower() for n in match.group(1).split(",")}
        plans = [p for p in plans if p["name"].lower() in names]
    return {"value": plans}


@router.route("GET", SUB + "/providers/Microsoft.Security/pricings/{name}")
def get_pricing(ctx: ArmContext, sub: str, name: str):
    plan = _pricings(ctx, sub).get(name.lower())
    if plan is None:
        raise ArmError(404, "PricingNotFound", f"There is no Defender plan named '{name}'.")
    return plan


@router.route("PUT", SUB + "/providers/Microsoft.Security/pricings/{name}")
def put_pricing(ctx: ArmContext, sub: str, name: str):
    plans = _pricings(ctx, sub)
    current = plans.get(name.lower())
    if current is None:
        raise ArmError(404, "PricingNotFound", f"There is no Defender plan named '{name}'.")
    body = ctx.json_body()
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict) or props.get("pricingTier") not in ("Free", "Standard"):
        raise bad_request("InvalidPricingTier", "properties.pricingTier is required and must be Free or Standard.")
    sub_plan = props.get("subPlan")
    if current["name"] == "VirtualMachines" and props["pricingTier"] == "Standard":
        sub_plan = sub_plan or "P2"
        if sub_plan not in ("P1", "P2"):
            raise bad_request("InvalidSubPlan", "subPlan for VirtualMachines must be P1 or P2.")
    if props.get("enforce") not in (None, "True", "False"):
        raise bad_request("InvalidEnforce", "enforce must be the string 'True' or 'False'.")
    updated = pricing_resource(sub, current["name"], props["pricingTier"], sub_plan if props["pricingTier"] ==
                               "Standard" else None, enablement_time=iso(ctx.state.now()))
    updated["properties"]["enforce"] = props.get("enforce") or "False"
    if isinstance(props.get("extensions"), list):
        updated["properties"]["extensions"] = props["extensions"]
    with operation_events(ctx.state, ctx.operation(sub), resource_id=updated["id"],
                          operation_name="Microsoft.Security/pricings/write", http_method="PUT",
                          properties={"pricingTier": props["pricingTier"], "subPlan": sub_plan or ""}):
        plans[name.lower()] = updated
    return updated


# --- legacy security policies -------------------------------------------------------------------------------
def _security_policy(ctx: ArmContext, sub: str, rg: str | None) -> dict:
    on = ctx.state.jit_enabled_by_security_policy(sub, rg) if rg else \
        ctx.state.security_policies.get(sub.lower(), {}).get("jit", "On") == "On"
    scope = f"/subscriptions/{sub}" + (f"/resourceGroups/{ctx.state.resource_group(sub, rg)['name']}" if rg else "")
    return {
        "id": f"{scope}/providers/Microsoft.Security/policies/default",
        "name": "default",
        "type": "Microsoft.Security/policies",
        "properties": {
            "policyLevel": "ResourceGroup" if rg else "Subscription",
            "name": rg or "default",
            "unique": "Off",
            "logCollection": "On",
            "recommendations": {
                "patch": "On", "baseline": "On", "antimalware": "On", "diskEncryption": "On", "acls": "On",
                "nsgs": "On", "waf": "On", "sqlAuditing": "On", "sqlTde": "On", "ngfw": "On",
                "vulnerabilityAssessment": "On", "storageEncryption": "On", "jitNetworkAccess": "On" if on else "Off",
            },
            "pricingConfiguration": {"selectedPricingTier": "Standard" if ctx.state.has_servers_plan_2(sub)
                                     else "Free"},
        },
    }


@router.route("GET", SUB + "/providers/Microsoft.Security/policies")
def list_security_policies(ctx: ArmContext, sub: str):
    ctx.require_subscription(sub)
    groups = [g["name"] for g in ctx.state.resource_groups.get(sub.lower(), {}).values()]
    return paged([_security_policy(ctx, sub, None)] + [_security_policy(ctx, sub, g) for g in groups],
                 ctx.state.page_size)


@router.route("GET", SUB + "/providers/Microsoft.Security/policies/{name}")
def get_security_policy(ctx: ArmContext, sub: str, name: str):
    ctx.require_subscription(sub)
    return _security_policy(ctx, sub, None)


@router.route("GET", RG + "/providers/Microsoft.Security/policies/{name}")
def get_group_security_policy(ctx: ArmContext, sub: str, rg: str, name: str):
    ctx.require_resource_group(sub, rg)
    return _security_policy(ctx, sub, rg)


@router.route("PUT", SUB + "/providers/Microsoft.Security/policies/{name}")
@router.route("PUT", RG + "/providers/Microsoft.Security/policies/{name}")
def put_security_policy(ctx: ArmContext, sub: str, name: str, rg: str | None = None):
    if rg:
        ctx.require_resource_group(sub, rg)
    else:
        ctx.require_subscription(sub)
    body = ctx.json_body()
    props = body.get("properties") if isinstance(body, dict) else None
    recommendations = props.get("recommendations") if isinstance(props, dict) else None
    value = recommendations.get("jitNetworkAccess") if isinstance(recommendations, dict) else None
    if value not in ("On", "Off"):
        raise bad_request("InvalidSecurityPolicy", "properties.recommendations.jitNetworkAccess must be On or Off.")
    policy = ctx.state.security_policies.setdefault(sub.lower(), {"jit": "On", "resourceGroups": {}})
    if rg:
        policy.setdefault("resourceGroups", {})[rg.lower()] = value
    else:
        policy["jit"] = value
    return _security_policy(ctx, sub, rg)
