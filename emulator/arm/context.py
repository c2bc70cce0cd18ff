"""Per-request helpers for ARM handlers: the caller, the body, paging with nextLink."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import request

from emulator.errors import ArmError, bad_request
from emulator.events import Operation


@dataclass
class ArmContext:
    """What a handler needs besides the path parameters."""

    state: object
    claims: dict
    caller: str

    def operation(self, subscription: str) -> Operation:
        return Operation(caller=self.caller, subscription=subscription,
                         tenant_id=self.claims.get("tid") or self.state.tenant_of(subscription),
                         client_ip=request.remote_addr or "127.0.0.1",
                         correlation_id=request.headers.get("x-ms-correlation-request-id")
                         or request.headers.get("x-ms-client-request-id") or str(uuid.uuid4()))

    def json_body(self) -> object:
        if not request.data:
            raise bad_request("InvalidRequestContent", "The request body is required.")
        try:
            return request.get_json(force=True)
        except Exception as exc:
            raise bad_request("InvalidRequestContent", "The request body is not valid JSON.") from exc

    def require_subscription(self, subscription: str) -> dict:
        sub = self.state.subscription(subscription)
        if sub is None:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found.")
        tenant = self.claims.get("tid")
        if tenant and tenant.lower() != sub["tenantId"].lower():
            raise ArmError(401, "InvalidAuthenticationTokenTenant",
                           f"The access token is from the wrong issuer. It must match the tenant "
                           f"{sub['tenantId']} associated with this subscription.")
        return sub

    def may_access(self, subscription: str) -> bool:
        """Whether the caller holds a role on ``subscription``: an application token only where its app's
        ``subscriptions`` say (every subscription of its tenant when they say nothing); a user, everywhere."""
        if self.claims.get("idtyp") != "app":
            return True
        tenant = self.state.tenants.get(self.claims.get("tid", ""))
        app = tenant.app(self.claims.get("appid", "")) if tenant is not None else None
        if app is None or app.subscriptions is None:
            return True
        return subscription.lower() in {s.lower() for s in app.subscriptions}

    def require_access(self, method: str, path: str) -> None:
        """Refuse a call under ``/subscriptions/{id}`` where the caller holds no role, as Resource Manager does
        (403 ``AuthorizationFailed``, naming the action it would have needed)."""
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2 or parts[0].lower() != "subscriptions" or self.may_access(parts[1]):
            return
        oid = self.claims.get("oid", "")
        raise ArmError(403, "AuthorizationFailed",
                       f"The client '{oid}' with object id '{oid}' does not have authorization to perform action "
                       f"'{action_of(method, parts)}' over scope '{path}' or the scope is invalid. If access was "
                       f"recently granted, please refresh your credentials.")

    def require_resource_group(self, subscription: str, resource_group: str) -> dict:
        self.require_subscription(subscription)
        group = self.state.resource_group(subscription, resource_group)
        if group is None:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{resource_group}' could not be found.")
        return group


def action_of(method: str, parts: list[str]) -> str:
    """The Azure action a call on the path ``parts`` performs, e.g. ``Microsoft.Network/virtualHubs/read``."""
    lowered = [p.lower() for p in parts]
    if "providers" in lowered:
        at = len(lowered) - 1 - lowered[::-1].index("providers")
        namespace, rest = parts[at + 1] if at + 1 < len(parts) else "", parts[at + 2:]
    else:
        namespace, rest = "Microsoft.Resources", parts
    if method.upper() == "POST" and len(rest) % 2 == 1:
        return "/".join([namespace, *rest[:-1:2], rest[-1], "action"])
    verb = {"PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method.upper(), "read")
    return "/".join([namespace, *rest[::2], verb])


def skip(default: int = 0) -> int:
    token = request.args.get("$skiptoken")
    if token is None:
        return default
    try:
        return max(0, int(token))
    except ValueError as exc:
        raise bad_request("InvalidSkipToken", "The $skiptoken is not valid.") from exc


def next_link(token: str) -> str:
    """This request's URL with ``$skiptoken`` replaced."""
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "$skiptoken"]
    args.append(("$skiptoken", token))
    return f"{request.host_url.rstrip('/')}{request.path}?{urlencode(args)}"


def paged(items: list, page_size: int) -> dict:
    """``{"value": [...], "nextLink": ...}`` for the page the request's $skiptoken points at."""
    start = skip()
    page = items[start:start + page_size]
    body: dict = {"value": page}
    if start + page_size < len(items):
        body["nextLink"] = next_link(str(start + page_size))
    return body
