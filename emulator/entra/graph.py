"""The Microsoft Graph calls the portal makes: ``/v1.0/me``, its group memberships, and OIDC userinfo."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from emulator.entra import tokens
from emulator.entra.errors import GraphError
from emulator.entra.models import EntraTenant, EntraUser
from emulator.entra.runtime import base_url, current_state, find_tenant

MAX_PAGE = 999
DEFAULT_PAGE = 100


def signed_in_user() -> tuple[EntraTenant, EntraUser]:
    """The user behind the request's Graph bearer token (Graph-style 401/400 otherwise)."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        claims = tokens.verify_access_token(current_state(), raw.strip(), audience=tokens.GRAPH_AUDIENCE)
    except tokens.InvalidToken as exc:
        raise GraphError(401, "InvalidAuthenticationToken", f"Access token validation failure: {exc}.") from exc
    tenant = find_tenant(str(claims["tid"]))
    if claims.get("idtyp") == "app":
        raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
    user = tenant.user(str(claims.get("oid", ""))) if tenant else None
    if user is None:
        raise GraphError(404, "Request_ResourceNotFound",
                         f"Resource '{claims.get('oid')}' does not exist or one of its queried reference-property "
                         "objects are not present.")
    return tenant, user


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

    @bp.route("/oidc/userinfo", methods=["GET", "POST"])
    def userinfo():
        _tenant, user = signed_in_user()
        given, surname = _names(user)
        return jsonify({"sub": user.oid, "name": user.display_name, "family_name": surname, "given_name": given,
                        "picture": f"{base_url()}/v1.0/me/photo/$value", "email": user.username,
                        "preferred_username": user.username})
