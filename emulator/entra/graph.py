"""The Microsoft Graph calls the portal makes: ``/v1.0/me``, its group memberships, OIDC userinfo, and (with the
portal's own application token) a user's transitive group memberships, for group overage at sign-in."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, jsonify, request

from emulator.entra import tokens
from emulator.entra.errors import GraphError
from emulator.entra.models import EntraTenant, EntraUser
from emulator.entra.runtime import base_url, current_state, find_tenant

MAX_PAGE = 999
DEFAULT_PAGE = 100
# Application permissions that let an app list any user's group memberships.
MEMBERSHIP_READ = {"GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"}
GROUP_FIELDS = ("id", "displayName", "securityEnabled", "mailEnabled")


def _graph_claims() -> dict:
    """The claims of the request's Graph bearer token (Graph-style 401 when missing or invalid)."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        return tokens.verify_access_token(current_state(), raw.strip(), audience=tokens.GRAPH_AUDIENCE)
    except tokens.InvalidToken as exc:
        raise GraphError(401, "InvalidAuthenticationToken", f"Access token validation failure: {exc}.") from exc


def signed_in_user() -> tuple[EntraTenant, EntraUser]:
    """The user behind the request's Graph bearer token (Graph-style 401/400 otherwise)."""
    claims = _graph_claims()
    tenant = find_tenant(str(claims["tid"]))
    if claims.get("idtyp") == "app":
        raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
    user = tenant.user(str(claims.get("oid", ""))) if tenant else None
    if user is None:
        raise GraphError(404, "Request_ResourceNotFound",
                         f"Resource '{claims.get('oid')}' does not exist or one of its queried reference-property "
                         "objects are not present.")
    return tenant, user


def calling_app() -> EntraTenant:
    """The tenant of the request's Graph application token (client credentials); Graph-style 401/403 otherwise."""
    claims = _graph_claims()
    tenant = find_tenant(str(claims["tid"]))
    if tenant is None or claims.get("idtyp") != "app" or not MEMBERSHIP_READ & set(claims.get("roles") or []):
        raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    return tenant


def _names(user: EntraUser) -> tuple[str, str | None]:
    given, _, surname = user.display_name.partition(" ")
    return given, surname or None


def _page_size() -> int:
    try:
        size = int(request.args.get("$top", DEFAULT_PAGE))
    except ValueError as exc:
        raise GraphError(400, "Request_BadRequest", "Invalid value for $top.") from exc
    if not 1 <= size <= MAX_PAGE:
        raise GraphError(400, "Request_BadRequest", f"Invalid page size specified: '{size}'. Must be between 1 and "
                                                    f"{MAX_PAGE} inclusive.")
    return size


def _skip() -> int:
    try:
        return max(0, int(request.args.get("$skiptoken", 0) or 0))
    except ValueError as exc:
        raise GraphError(400, "Request_BadRequest", "Invalid $skiptoken.") from exc


def register_graph_routes(bp: Blueprint) -> None:
    """Add the Graph endpoints to ``bp``."""

    @bp.get("/v1.0/me")
    def me():
        _tenant, user = signed_in_user()
        given, surname = _names(user)
        return jsonify({
            "@odata.context": f"{base_url()}/v1.0/$metadata#users/$entity",
            "businessPhones": [], "displayName": user.display_name, "givenName": given, "jobTitle": None,
            "mail": user.username, "mobilePhone": None, "officeLocation": None, "preferredLanguage": None,
            "surname": surname, "userPrincipalName": user.username, "id": user.oid,
        })

    @bp.get("/v1.0/me/memberOf")
    @bp.get("/v1.0/me/transitiveMemberOf")
    def member_of():
        tenant, user = signed_in_user()
        groups = [{"@odata.type": "#microsoft.graph.group", "id": g.oid, "displayName": g.display_name,
                   "securityEnabled": True, "mailEnabled": False}
                  for g in tenant.groups if g.oid in user.groups]
        size, start = _page_size(), _skip()
        body = {"@odata.context": f"{base_url()}/v1.0/$metadata#directoryObjects", "value": groups[start:start + size]}
        if start + size < len(groups):
            body["@odata.nextLink"] = f"{request.base_url}?$top={size}&$skiptoken={start + size}"
        return jsonify(body)

    @bp.get("/v1.0/users/<oid>/transitiveMemberOf/microsoft.graph.group")
    def user_transitive_groups(oid: str):
        tenant = calling_app()
        user = tenant.user(oid)
        if user is None:
            raise GraphError(404, "Request_ResourceNotFound",
                             f"Resource '{oid}' does not exist or one of its queried reference-property objects are "
                             "not present.")
        selected = [f.strip() for f in request.args.get("$select", "").split(",") if f.strip()] or list(GROUP_FIELDS)
        unknown = [f for f in selected if f not in GROUP_FIELDS]
        if unknown:
            raise GraphError(400, "Request_BadRequest",
                             f"Could not find a property named '{unknown[0]}' on type 'microsoft.graph.group'.")
        names = {g.oid: g.display_name for g in tenant.groups}
        rows = [{"id": g, "displayName": names.get(g, g), "securityEnabled": True, "mailEnabled": False}
                for g in user.groups]
        # The emulator's page size (set through its control API) caps $top, as Graph may return fewer than asked.
        size, start = min(_page_size(), getattr(current_state(), "page_size", MAX_PAGE)), _skip()
        body = {"@odata.context": f"{base_url()}/v1.0/$metadata#groups({','.join(selected)})",
                "value": [{f: row[f] for f in selected} for row in rows[start:start + size]]}
        if start + size < len(rows):
            query = {"$top": size, "$skiptoken": start + size}
            if request.args.get("$select"):
                query["$select"] = request.args["$select"]
            body["@odata.nextLink"] = f"{request.base_url}?{urlencode(query, safe='$,')}"
        return jsonify(body)

    @bp.route("/oidc/userinfo", methods=["GET", "POST"])
    def userinfo():
        _tenant, user = signed_in_user()
        given, surname = _names(user)
        return jsonify({"sub": user.oid, "name": user.display_name, "family_name": surname, "given_name": given,
                        "picture": f"{base_url()}/v1.0/me/photo/$value", "email": user.username,
                        "preferred_username": user.username})
