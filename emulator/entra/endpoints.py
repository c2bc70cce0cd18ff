"""Entra ID endpoints: discovery, JWKS, authorize (with PKCE), token, logout, Graph, and test knobs."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, current_app, jsonify, make_response, redirect, request

from emulator.entra import pages, tokens
from emulator.entra.models import EntraApp, EntraTenant, EntraUser

CODE_LIFETIME = timedelta(minutes=5)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
SPOIL_MODES = {"tampered", "expired", "wrong_tenant", "wrong_audience", "wrong_issuer", "no_nonce", "bad_nonce"}
OTHER_TENANT = "00000000-dead-4bad-8bad-000000000bad"


@dataclass
class AuthCode:
    tenant_id: str
    client_id: str
    redirect_uri: str
    user_oid: str
    scope: str
    nonce: str | None
    code_challenge: str
    expires: datetime


@dataclass
class EntraRuntime:
    """What the emulated Entra ID keeps between calls (not persisted: codes and refresh tokens are short-lived)."""

    codes: dict[str, AuthCode] = field(default_factory=dict)
    refresh_tokens: dict[str, tuple[str, str, str, str]] = field(default_factory=dict)  # token -> tid, cid, oid, scope
    next_id_token: str | None = None


class EntraError(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description


def _state():
    return current_app.config["EMULATOR_STATE"]


def _runtime() -> EntraRuntime:
    return current_app.extensions.setdefault("entra", EntraRuntime())


def _base_url() -> str:
    return request.host_url.rstrip("/")


def _tenant(tenant_id: str) -> EntraTenant:
    tenant = _state().tenants.get(tenant_id)
    if tenant is None:
        raise EntraError(400, "invalid_request", 90002,
                         f"AADSTS90002: Tenant '{tenant_id}' not found. Check to make sure you have the correct "
                         "tenant ID and are signing into the correct cloud.")
    return tenant


def _json_error(err: EntraError) -> Response:
    now = _state().now()
    body = {
        "error": err.error,
        "error_description": f"{err.description}\r\nTrace ID: {uuid.uuid4()}\r\nTimestamp: {now:%Y-%m-%d %H:%M:%SZ}",
        "error_codes": [err.code],
        "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
    }
    response = jsonify(body)
    response.status_code = err.status
    return response


def redirect_uri_allowed(app: EntraApp, uri: str) -> bool:
    """Exact match, or a loopback http(s) URI with any port and the same path as a registered one."""
    if uri in app.redirect_uris:
        return True
    asked = urlsplit(uri)
    if asked.scheme not in ("http", "https") or f"{asked.hostname}" not in LOOPBACK_HOSTS | {"::1"}:
        return False
    for registered in app.redirect_uris:
        known = urlsplit(registered)
        if known.hostname in LOOPBACK_HOSTS | {"::1"} and known.path == asked.path and known.scheme == asked.scheme:
            return True
    return False


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _redirect_with(uri: str, params: dict) -> Response:
    separator = "&" if "?" in uri else "?"
    return redirect(f"{uri}{separator}{urlencode({k: v for k, v in params.items() if v is not None})}", code=302)


def _client(tenant: EntraTenant, form) -> EntraApp:
    """Authenticate the client by ``client_secret`` in the body or HTTP Basic."""
    client_id, secret = form.get("client_id", ""), form.get("client_secret")
    if request.authorization and request.authorization.type == "basic":
        client_id = request.authorization.username or client_id
        secret = request.authorization.password
    app = tenant.app(client_id)
    if app is None:
        raise EntraError(400, "unauthorized_client", 700016,
                         f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory "
                         f"'{tenant.display_name}'.")
    if secret is None or not hmac.compare_digest(secret, app.client_secret):
        raise EntraError(401, "invalid_client", 7000215,
                         "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
                         "request is the client secret value, not the client secret ID.")
    return app


def _audience_for(scope: str, app: EntraApp) -> str:
    scopes = scope.split()
    for item in scopes:
        if item.startswith(tokens.ARM_AUDIENCE):
            return tokens.ARM_AUDIENCE
        if item.startswith(f"api://{app.client_id}"):
            return app.client_id
    return tokens.GRAPH_AUDIENCE


def _id_token(tenant: EntraTenant, app: EntraApp, user: EntraUser, nonce: str | None) -> str:
    """The ID token, spoiled in the way a test asked for (once) when it asked."""
    state = _state()
    runtime = _runtime()
    mode, runtime.next_id_token = runtime.next_id_token, None
    now = tokens.wall_clock()
    claims = {
        "aud": app.client_id, "iss": tokens.v2_issuer(_base_url(), tenant.tenant_id), "tid": tenant.tenant_id,
        "oid": user.oid, "sub": base64.urlsafe_b64encode(hashlib.sha256(f"{user.oid}:{app.client_id}".encode())
                                                           .digest()).rstrip(b"=").decode(),
        "preferred_username": user.username, "name": user.display_name, "email": user.username,
        "ver": "2.0", "uti": uuid.uuid4().hex, **tokens.timing(now),
    }
    roles = [r for r in user.app_roles if r in app.app_roles]
    if roles:
        claims["roles"] = roles
    if user.groups:
        claims["groups"] = list(user.groups)
    if nonce:
        claims["nonce"] = nonce
    if mode == "expired":
        claims.update(tokens.timing(now - timedelta(hours=3)))
    elif mode == "wrong_tenant":
        other = next((t for t in state.tenants if t != tenant.tenant_id), OTHER_TENANT)
        claims.update(tid=other, iss=tokens.v2_issuer(_base_url(), other))
    elif mode == "wrong_audience":
        claims["aud"] = str(uuid.uuid4())
    elif mode == "wrong_issuer":
        claims["iss"] = f"https://login.evil.example/{tenant.tenant_id}/v2.0"
    elif mode == "no_nonce":
        claims.pop("nonce", None)
    elif mode == "bad_nonce":
        claims["nonce"] = secrets.token_urlsafe(16)
    token = tokens.sign(state, claims)
    if mode == "tampered":
        header, _payload, signature = token.split(".")
        claims["name"] = claims["name"] + " (tampered)"
        forged = base64.urlsafe_b64encode(jsonify(claims).get_data()).rstrip(b"=").decode()
        token = ".".join([header, forged, signature])
    return token


def _user_tokens(tenant: EntraTenant, app: EntraApp, user: EntraUser, scope: str, nonce: str | None,
                 with_id_token: bool) -> dict:
    state = _state()
    body = {
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": int(tokens.LIFETIME.total_seconds()),
        "ext_expires_in": int(tokens.LIFETIME.total_seconds()),
        "access_token": tokens.user_token(state, tenant, app, user, _audience_for(scope, app), scope),
    }
    if with_id_token and "openid" in scope.split():
        body["id_token"] = _id_token(tenant, app, user, nonce)
    if "offline_access" in scope.split():
        refresh = secrets.token_urlsafe(32)
        _runtime().refresh_tokens[refresh] = (tenant.tenant_id, app.client_id, user.oid, scope)
        body["refresh_token"] = refresh
    return body


def create_entra_blueprint() -> Blueprint:
    """All Entra ID and Graph routes of the emulator."""
    bp = Blueprint("entra", __name__)
    bp.register_error_handler(EntraError, _json_error)

    @bp.get("/<tenant_id>/v2.0/.well-known/openid-configuration")
    def discovery(tenant_id: str):
        tenant = _tenant(tenant_id)
        base = f"{_base_url()}/{tenant.tenant_id}"
        return jsonify({
            "issuer": tokens.v2_issuer(_base_url(), tenant.tenant_id),
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "userinfo_endpoint": f"{_base_url()}/oidc/userinfo",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "name", "nonce", "oid", "tid",
                                 "preferred_username", "email", "roles", "groups", "ver"],
            "request_uri_parameter_supported": False,
            "tenant_region_scope": "EU",
            "cloud_instance_name": "emulator.local",
            "msgraph_host": urlsplit(_base_url()).netloc,
            "rbac_url": _base_url(),
        })

    @bp.get("/<tenant_id>/discovery/v2.0/keys")
    def jwks(tenant_id: str):
        _tenant(tenant_id)
        return jsonify({"keys": [tokens.signing_key(_state()).jwk]})

    @bp.route("/<tenant_id>/oauth2/v2.0/authorize", methods=["GET", "POST"])
    def authorize(tenant_id: str):
        try:
            tenant = _tenant(tenant_id)
        except EntraError as err:
            return make_response(pages.error_page(f"AADSTS{err.code}", err.description), err.status)
        params = request.values
        app = tenant.app(params.get("client_id", ""))
        if app is None:
            return make_response(pages.error_page(
                "AADSTS700016", f"Application with identifier '{params.get('client_id', '')}' was not found in "
                f"the directory '{tenant.display_name}'."), 400)
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri_allowed(app, redirect_uri):
            return make_response(pages.error_page(
                "AADSTS50011", f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{app.client_id}'."), 400)
        state_param = params.get("state")

        def fail(error: str, description: str) -> Response:
            return _redirect_with(redirect_uri, {"error": error, "error_description": description,
                                                 "state": state_param})

        if params.get("response_type") != "code":
            return fail("unsupported_response_type", "AADSTS70005: response_type must be 'code'.")
        if "openid" not in params.get("scope", "").split():
            return fail("invalid_request", "AADSTS900144: The request body must contain the 'openid' scope.")
        if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
            return fail("invalid_request", "AADSTS9002325: Proof Key for Code Exchange is required: send "
                                           "code_challenge with code_challenge_method=S256.")
        if request.method == "GET":
            hidden = [(k, v) for k, v in params.items(multi=True)]
            return pages.sign_in_page(tenant, app, hidden, params.get("login_hint", ""))
        if request.form.get("cancel"):
            return fail("access_denied", "AADSTS65004: User declined to consent to access the app.")
        user = tenant.user(request.form.get("user_oid", ""))
        if user is None:
            return make_response(pages.error_page("AADSTS50034", "The user account does not exist."), 400)
        code = secrets.token_urlsafe(32)
        _runtime().codes[code] = AuthCode(
            tenant_id=tenant.tenant_id, client_id=app.client_id, redirect_uri=redirect_uri, user_oid=user.oid,
            scope=params.get("scope", ""), nonce=params.get("nonce"), code_challenge=params["code_challenge"],
            expires=tokens.wall_clock() + CODE_LIFETIME,
        )
        return _redirect_with(redirect_uri, {"code": code, "state": state_param, "session_state": uuid.uuid4()})

    @bp.post("/<tenant_id>/oauth2/v2.0/token")
    def token(tenant_id: str):
        tenant = _tenant(tenant_id)
        form = request.form
        app = _client(tenant, form)
        grant = form.get("grant_type", "")
        state = _state()
        with state.lock:
            if grant == "client_credentials":
                scope = form.get("scope", "")
                if not scope.endswith("/.default"):
                    raise EntraError(400, "invalid_scope", 1002012,
                                     "AADSTS1002012: The provided value for scope is not valid. Client credential "
                                     "flows must have a scope value with /.default suffixed to the resource.")
                return jsonify({"token_type": "Bearer", "expires_in": int(tokens.LIFETIME.total_seconds()),
                                "ext_expires_in": int(tokens.LIFETIME.total_seconds()),
                                "access_token": tokens.app_token(state, tenant, app, _audience_for(scope, app))})
            if grant == "authorization_code":
                grant_code = _runtime().codes.pop(form.get("code", ""), None)
                if grant_code is None or grant_code.tenant_id != tenant.tenant_id:
                    raise EntraError(400, "invalid_grant", 54005,
                                     "AADSTS54005: OAuth2 Authorization code was already redeemed or is invalid.")
                if grant_code.expires < tokens.wall_clock():
                    raise EntraError(400, "invalid_grant", 70008,
                                     "AADSTS70008: The provided authorization code or refresh token has expired.")
                if grant_code.client_id != app.client_id or grant_code.redirect_uri != form.get("redirect_uri"):
                    raise EntraError(400, "invalid_grant", 50148,
                                     "AADSTS50148: The code was issued to another client or redirect URI.")
                if _s256(form.get("code_verifier", "")) != grant_code.code_challenge:
                    raise EntraError(400, "invalid_grant", 501481,
                                     "AADSTS501481: The Code_Verifier does not match the code_challenge supplied "
                                     "in the authorization request.")
                user = tenant.user(grant_code.user_oid)
                return jsonify(_user_tokens(tenant, app, user, grant_code.scope, grant_code.nonce, True))
            if grant == "refresh_token":
                stored = _runtime().refresh_tokens.pop(form.get("refresh_token", ""), None)
                if stored is None or stored[0] != tenant.tenant_id or stored[1] != app.client_id:
                    raise EntraError(400, "invalid_grant", 9002313,
                                     "AADSTS9002313: Invalid request. The refresh token is malformed or not valid.")
                user = tenant.user(stored[2])
                if user is None:
                    raise EntraError(400, "invalid_grant", 50034, "AADSTS50034: The user account does not exist.")
                return jsonify(_user_tokens(tenant, app, user, form.get("scope") or stored[3], None, True))
        raise EntraError(400, "unsupported_grant_type", 70003,
                         f"AADSTS70003: The app requested an unsupported grant type '{grant}'.")

    @bp.get("/<tenant_id>/oauth2/v2.0/logout")
    def logout(tenant_id: str):
        tenant = _tenant(tenant_id)
        target = request.args.get("post_logout_redirect_uri", "")
        if target and any(redirect_uri_allowed(app, target) or urlsplit(target).hostname in LOOPBACK_HOSTS
                          for app in tenant.apps):
            return redirect(target, code=302)
        return pages.signed_out_page()

    def graph_user() -> tuple[EntraTenant, EntraUser]:
        header = request.headers.get("Authorization", "")
        scheme, _, raw = header.partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise tokens.InvalidToken("missing bearer token")
            claims = tokens.verify_access_token(_state(), raw.strip(), audience=tokens.GRAPH_AUDIENCE)
        except tokens.InvalidToken as exc:
            raise GraphError(401, "InvalidAuthenticationToken", f"Access token validation failure: {exc}") from exc
        tenant = _state().tenants[claims["tid"]]
        user = tenant.user(claims.get("oid", ""))
        if user is None:
            raise GraphError(403, "Authorization_RequestDenied", "This call needs a signed-in user.")
        return tenant, user

    @bp.get("/v1.0/me")
    def me():
        _, user = graph_user()
        given, _, surname = user.display_name.partition(" ")
        return jsonify({"@odata.context": f"{_base_url()}/v1.0/$metadata#users/$entity", "id": user.oid,
                        "userPrincipalName": user.username, "displayName": user.display_name,
                        "mail": user.username, "givenName": given, "surname": surname or None})

    @bp.get("/v1.0/me/memberOf")
    @bp.get("/v1.0/me/transitiveMemberOf")
    def member_of():
        tenant, user = graph_user()
        groups = [{"@odata.type": "#microsoft.graph.group", "id": g.oid, "displayName": g.display_name}
                  for g in tenant.groups if g.oid in user.groups]
        size = max(1, min(int(request.args.get("$top", 100)), 999))
        start = int(request.args.get("$skiptoken", 0) or 0)
        body = {"value": groups[start:start + size]}
        if start + size < len(groups):
            body["@odata.nextLink"] = f"{request.base_url}?$top={size}&$skiptoken={start + size}"
        return jsonify(body)

    @bp.get("/oidc/userinfo")
    def userinfo():
        _, user = graph_user()
        given, _, surname = user.display_name.partition(" ")
        return jsonify({"sub": user.oid, "name": user.display_name, "given_name": given, "family_name": surname,
                        "email": user.username, "preferred_username": user.username})

    @bp.route("/_emulator/entra/next-id-token", methods=["POST", "DELETE"])
    def next_id_token():
        if request.method == "DELETE":
            _runtime().next_id_token = None
            return make_response("", 204)
        mode = (request.get_json(silent=True) or {}).get("mode")
        if mode not in SPOIL_MODES:
            return make_response(jsonify({"error": f"mode must be one of {sorted(SPOIL_MODES)}"}), 400)
        _runtime().next_id_token = mode
        return jsonify({"mode": mode})

    @bp.put("/_emulator/entra/users/<oid>")
    def update_user(oid: str):
        body = request.get_json(silent=True) or {}
        state = _state()
        with state.lock:
            for tenant in state.tenants.values():
                user = tenant.user(oid)
                if user is not None:
                    if "app_roles" in body:
                        user.app_roles = list(body["app_roles"])
                    if "groups" in body:
                        user.groups = list(body["groups"])
                    return jsonify({"oid": user.oid, "app_roles": user.app_roles, "groups": user.groups})
        return make_response(jsonify({"error": f"no user {oid}"}), 404)

    bp.register_error_handler(GraphError, _graph_error)
    return bp


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _graph_error(err: GraphError) -> Response:
    response = jsonify({"error": {"code": err.code, "message": err.message,
                                  "innerError": {"request-id": str(uuid.uuid4())}}})
    response.status_code = err.status
    return response
