"""The OpenID Connect / OAuth 2.0 endpoints: discovery, JWKS, authorize (code + PKCE, silently with ``prompt=none``
for the user of the SSO session cookie), token, logout."""
from __future__ import annotations

import hmac
import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, jsonify, make_response, redirect, request

from emulator.entra import issuance, pages, sso, tokens
from emulator.entra.errors import EntraError, with_trace
from emulator.entra.models import EntraApp, EntraTenant, EntraUser
from emulator.entra.runtime import (
    CODE_LIFETIME,
    MULTI_TENANT,
    AuthCode,
    base_url,
    current_state,
    one_tenant,
    redirect_uri_allowed,
    runtime,
    tenants_of,
    user_in,
)

RESPONSE_MODES = ("query", "form_post")
NO_USER_SIGNED_IN = "AADSTS50058: A silent sign-in request was sent but no user is signed in."
NO_USER_MATCHES_HINT = ("AADSTS50058: A silent sign-in request was sent but none of the currently signed in user(s) "
                        "match the requested login hint.")
DISCOVERY_SPOIL_MODES = ("no_jwks_uri", "jwks_uri_not_a_string", "jwks_uri_over_http", "not_an_object",
                         "not_json", "no_authorization_endpoint", "no_token_endpoint", "token_endpoint_over_http",
                         "no_issuer")
JWKS_SPOIL_MODES = ("keys_not_a_list", "key_not_an_object", "wrong_kty", "no_modulus", "modulus_not_base64url")
METADATA_SPOIL_MODES = {"discovery": DISCOVERY_SPOIL_MODES, "jwks": JWKS_SPOIL_MODES}  # the knobs' documents


def discovery_document(key: str, tenant: EntraTenant | None) -> dict:
    """The v2.0 OpenID configuration of a tenant, or of ``organizations``/``common`` (issuer with ``{tenantid}``)."""
    root = base_url()
    base = f"{root}/{tenant.tenant_id if tenant else key}"
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": tokens.v2_issuer(root, tenant.tenant_id if tenant else "{tenantid}"),
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{root}/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "auth_time", "nonce", "name", "oid", "tid",
                             "ver", "preferred_username", "email", "roles", "groups"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "tenant_region_scope": "EU" if tenant else None,
        "cloud_instance_name": urlsplit(root).hostname,
        "cloud_graph_host_name": urlsplit(root).netloc,
        "msgraph_host": urlsplit(root).netloc,
        "rbac_url": root,
    }


def spoiled_discovery(document: dict, mode: str) -> Response:
    """The discovery answer as the ``discovery`` knob spoils it: a relying party must refuse it, not trust it."""
    if mode == "not_json":  # e.g. a proxy's sign-in page in front of Entra
        return Response("<html><body>Sign in to continue</body></html>", mimetype="text/html")
    if mode == "not_an_object":
        return jsonify([document])
    document = dict(document)
    if mode.startswith("no_"):  # no_jwks_uri, no_authorization_endpoint, no_token_endpoint, no_issuer
        del document[mode.removeprefix("no_")]
    elif mode == "jwks_uri_not_a_string":
        document["jwks_uri"] = {"href": document["jwks_uri"]}
    elif mode == "jwks_uri_over_http":
        document["jwks_uri"] = "http://" + document["jwks_uri"].removeprefix("https://")
    elif mode == "token_endpoint_over_http":
        document["token_endpoint"] = "http://" + document["token_endpoint"].removeprefix("https://")
    return jsonify(document)


def spoiled_jwks(keys: list[dict], mode: str) -> Response:
    """The JWKS answer as the ``jwks`` knob spoils it: a relying party must refuse it, not trust it."""
    if mode == "keys_not_a_list":
        return jsonify({"keys": {key["kid"]: key for key in keys}})
    if mode == "key_not_an_object":
        return jsonify({"keys": [json.dumps(key) for key in keys]})
    keys = [dict(key) for key in keys]
    for key in keys:
        if mode == "wrong_kty":
            key["kty"] = "EC"
        elif mode == "no_modulus":
            del key["n"]
        elif mode == "modulus_not_base64url":
            key["n"] = "A"  # one character is no base64url of anything
    return jsonify({"keys": keys})


def not_assigned(app: EntraApp, user: EntraUser) -> str:
    """Entra ID's AADSTS50105 description: ``user`` is not assigned to ``app``, which requires assignment."""
    return (f"AADSTS50105: Your administrator has configured the application {app.display_name} ('{app.client_id}') "
            "to block users unless they are specifically granted ('assigned') access to the application. The signed "
            f"in user '{user.username}' is blocked because they are not a direct member of a group with access, nor "
            "had access directly assigned by an administrator. Please contact your administrator to assign access to "
            "this application.")


def _refuse_unassigned(app: EntraApp, user: EntraUser) -> None:
    """A user taken off the app since the code or refresh token was issued gets no more tokens: ``invalid_grant``
    with AADSTS50105, as Entra ID answers."""
    if not user.assigned:
        raise EntraError(400, "invalid_grant", 50105, not_assigned(app, user))


def _redirect_with(uri: str, params: dict, response_mode: str = "query") -> Response:
    params = {k: v for k, v in params.items() if v is not None}
    if response_mode == "form_post":
        return make_response(pages.form_post_page(uri, params))
    separator = "&" if "?" in uri else "?"
    return redirect(f"{uri}{separator}{urlencode(params)}", code=302)


def _client(tenant: EntraTenant) -> EntraApp:
    """The calling app, authenticated by ``client_secret`` in the body or by HTTP Basic."""
    form = request.form
    client_id, secret = form.get("client_id", ""), form.get("client_secret")
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        if client_id and auth.username != client_id:
            raise EntraError(401, "invalid_client", 7000218,
                             "AADSTS7000218: The client_id in the request body does not match the one in the "
                             "Authorization header.")
        client_id, secret = auth.username or "", auth.password
    if form.get("client_assertion"):
        raise EntraError(401, "invalid_client", 700027,
                         "AADSTS700027: Client assertion contains an invalid signature (the emulator supports "
                         "client secrets only).")
    app = tenant.app(client_id)
    if app is None:
        raise EntraError(400, "unauthorized_client", 700016,
                         f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory "
                         f"'{tenant.display_name}'. This can happen if the application has not been installed by the "
                         "administrator of the tenant or consented to by any user in the tenant.")
    if not secret:
        raise EntraError(401, "invalid_client", 7000218,
                         "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' "
                         "or 'client_secret'.")
    if not hmac.compare_digest(secret.encode(), app.client_secret.encode()):
        raise EntraError(401, "invalid_client", 7000215,
                         "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request "
                         "is the client secret value, not the client secret ID, for a secret added to app "
                         f"'{app.client_id}'.")
    return app


@dataclass(frozen=True)
class _Reply:
    """How an authorize request is answered: at its redirect URI, in its response mode, with its state."""

    redirect_uri: str
    response_mode: str
    state: str | None

    def error(self, error: str, description: str) -> Response:
        return _redirect_with(self.redirect_uri, {"error": error, "error_description": description,
                                                  "state": self.state}, self.response_mode)

    def code(self, code: str) -> Response:
        return _redirect_with(self.redirect_uri, {"code": code, "state": self.state,
                                                  "session_state": str(uuid.uuid4())}, self.response_mode)


def _malformed(params: Mapping[str, str], reply: _Reply) -> Response | None:
    """The refusal of a request without response_type ``code``, the ``openid`` scope or an S256 PKCE challenge."""
    if params.get("response_type") != "code":
        return reply.error("unsupported_response_type",
                           "AADSTS700054: response_type 'code' is the only one enabled for the application.")
    if "openid" not in params.get("scope", "").split():
        return reply.error("invalid_request", "AADSTS900144: The request body must contain the following "
                                              "parameter: 'openid' in scope.")
    if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
        return reply.error("invalid_request", "AADSTS9002325: Proof Key for Code Exchange is required: send "
                                              "code_challenge with code_challenge_method=S256.")
    return None


def _refuse_sign_in(registered: list[tuple[EntraTenant, EntraApp]], tenant: EntraTenant, user: EntraUser,
                    reply: _Reply) -> Response:
    """``access_denied`` with AADSTS50105: ``user`` is not assigned to the app (refused once they are known)."""
    return reply.error("access_denied", with_trace(not_assigned(next(a for t, a in registered if t is tenant), user)))


def _issue_code(tenant: EntraTenant, user: EntraUser, params: Mapping[str, str], reply: _Reply) -> Response:
    """A one-use code for ``user`` of ``tenant``, sent back to the app: the end of an interactive or silent sign-in."""
    state = current_state()
    code = secrets.token_urlsafe(48)
    with state.lock:
        runtime().forget_expired(state.now())
        runtime().codes[code] = AuthCode(
            tenant_id=tenant.tenant_id, client_id=params["client_id"], redirect_uri=reply.redirect_uri,
            user_oid=user.oid, scope=params.get("scope", ""), nonce=params.get("nonce") or None,
            code_challenge=params["code_challenge"], expires=state.now() + CODE_LIFETIME)
    return reply.code(code)


def _interactive_sign_in(registered: list[tuple[EntraTenant, EntraApp]], params: Mapping[str, str],
                         reply: _Reply) -> Response:
    """The account picker's answer: cancel, or the chosen user's code and SSO session cookie."""
    if request.form.get("cancel"):
        return reply.error("access_denied", "AADSTS65004: User declined to consent to access the app.")
    found = user_in([t for t, _a in registered], request.form.get("user_oid", ""))
    if found is None:
        return make_response(pages.error_page(
            "AADSTS50034", "The user account does not exist in the directory. To sign into this application, the "
            "account must be added to the directory."), 400)
    tenant, user = found
    if not user.assigned:
        return _refuse_sign_in(registered, tenant, user, reply)
    return sso.remember(_issue_code(tenant, user, params, reply), tenant, user)


def _silent_sign_in(registered: list[tuple[EntraTenant, EntraApp]], params: Mapping[str, str],
                    reply: _Reply) -> Response:
    """``prompt=none``: a code for the user of the SSO session cookie, without the picker, or why there is none."""
    found = sso.signed_in([t for t, _a in registered])
    if found is None:
        return reply.error("login_required", NO_USER_SIGNED_IN)
    tenant, user = found
    hint = params.get("login_hint")
    if hint and hint.lower() != user.username.lower():
        return reply.error("login_required", NO_USER_MATCHES_HINT)
    if not user.assigned:
        return _refuse_sign_in(registered, tenant, user, reply)
    return _issue_code(tenant, user, params, reply)


def _authorize(tenant_key: str) -> Response:
    try:
        tenants = tenants_of(tenant_key)
    except EntraError as err:
        return make_response(pages.error_page(f"AADSTS{err.code}", err.description), err.status)
    params = request.values
    client_id = params.get("client_id", "")
    registered = [(t, t.app(client_id)) for t in tenants if t.app(client_id) is not None]
    if not registered:
        return make_response(pages.error_page(
            "AADSTS700016", f"Application with identifier '{client_id}' was not found in the directory "
            f"'{tenants[0].display_name if len(tenants) == 1 else tenant_key}'."), 400)
    app = registered[0][1]
    redirect_uri = params.get("redirect_uri", "")
    if not all(redirect_uri_allowed(a, redirect_uri) for _t, a in registered):
        return make_response(pages.error_page(
            "AADSTS50011", f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect "
            f"URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request "
            "matches one added to your application in the Azure portal."), 400)
    response_mode = params.get("response_mode", "query")
    reply = _Reply(redirect_uri, response_mode if response_mode in RESPONSE_MODES else "query", params.get("state"))
    refused = _malformed(params, reply)
    if refused is not None:
        return refused
    if params.get("prompt") == "none":
        return _silent_sign_in(registered, params, reply)
    if request.method == "GET":
        groups = [(t, list(t.users)) for t, _a in registered]
        hidden = [(k, v) for k, v in params.items(multi=True) if k not in ("user_oid", "cancel")]
        return make_response(pages.sign_in_page(groups, app, hidden, params.get("login_hint", "")))
    return _interactive_sign_in(registered, params, reply)


def _redeem_code(tenants: list[EntraTenant]) -> dict:
    form = request.form
    state = current_state()
    code = form.get("code", "")
    grant = runtime().codes.get(code)
    if grant is None or grant.tenant_id not in {t.tenant_id for t in tenants}:
        raise EntraError(400, "invalid_grant", 54005,
                         "AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid "
                         "code or use an existing refresh token.")
    tenant = state.tenants[grant.tenant_id]
    app = _client(tenant)
    del runtime().codes[code]  # one use, whatever happens next
    if grant.expires <= state.now():
        raise EntraError(400, "invalid_grant", 70008,
                         "AADSTS70008: The provided authorization code or refresh token has expired due to "
                         "inactivity. Send a new interactive authorization request for this user and resource.")
    if grant.client_id != app.client_id:
        raise EntraError(400, "invalid_grant", 70002,
                         "AADSTS70002: The authorization code was issued to another client.")
    if grant.redirect_uri != form.get("redirect_uri"):
        raise EntraError(400, "invalid_grant", 50148,
                         "AADSTS50148: The redirect_uri does not match the one used in the authorization request.")
    verifier = form.get("code_verifier", "")
    if not verifier or not hmac.compare_digest(issuance.s256(verifier), grant.code_challenge):
        raise EntraError(400, "invalid_grant", 501481,
                         "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the "
                         "authorization request.")
    user = tenant.user(grant.user_oid)
    if user is None:
        raise EntraError(400, "invalid_grant", 50034, "AADSTS50034: The user account does not exist in the directory.")
    _refuse_unassigned(app, user)
    spoil, runtime().next_id_token = runtime().next_id_token, None
    claims, runtime().next_id_token_claims = runtime().next_id_token_claims, None
    return issuance.user_token_response(base_url(), tenant, app, user, grant.scope, grant.nonce, spoil, claims)


def _redeem_refresh_token(tenants: list[EntraTenant]) -> dict:
    form = request.form
    state = current_state()
    grants = runtime().refresh_tokens
    grant = grants.get(form.get("refresh_token", ""))
    if grant is None or grant.tenant_id not in {t.tenant_id for t in tenants}:
        raise EntraError(400, "invalid_grant", 9002313,
                         "AADSTS9002313: Invalid request. Request is malformed or invalid (refresh token).")
    tenant = state.tenants[grant.tenant_id]
    app = _client(tenant)
    if grant.client_id != app.client_id:
        raise EntraError(400, "invalid_grant", 70000,
                         "AADSTS70000: The refresh token was issued to a different client.")
    user = tenant.user(grant.user_oid)
    if user is not None and grant.expires > state.now():
        # Refused, not revoked: the token stands, and works again once the user is assigned again.
        _refuse_unassigned(app, user)
    del grants[form["refresh_token"]]
    if grant.expires <= state.now():
        raise EntraError(400, "invalid_grant", 700082,
                         "AADSTS700082: The refresh token has expired due to inactivity.")
    if user is None:
        raise EntraError(400, "invalid_grant", 50034, "AADSTS50034: The user account does not exist in the directory.")
    asked = form.get("scope", "").split()
    scope = grant.scope if not asked else " ".join(dict.fromkeys([*asked, "offline_access"]))
    return issuance.user_token_response(base_url(), tenant, app, user, scope, None)


def _token(tenant_key: str) -> Response:
    tenants = tenants_of(tenant_key)
    grant_type = request.form.get("grant_type", "")
    state = current_state()
    with state.lock:
        if grant_type == "client_credentials":
            tenant = one_tenant(tenant_key)
            return jsonify(issuance.app_token_response(tenant, _client(tenant), request.form.get("scope", "")))
        if grant_type == "authorization_code":
            return jsonify(_redeem_code(tenants))
        if grant_type == "refresh_token":
            return jsonify(_redeem_refresh_token(tenants))
    if not grant_type:
        raise EntraError(400, "invalid_request", 900144,
                         "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
    raise EntraError(400, "unsupported_grant_type", 70003,
                     f"AADSTS70003: The app requested an unsupported grant type '{grant_type}'.")


def _logout(tenant_key: str) -> Response:
    try:
        tenants = tenants_of(tenant_key)
    except EntraError as err:
        return make_response(pages.error_page(f"AADSTS{err.code}", err.description), err.status)
    target = request.args.get("post_logout_redirect_uri", "")
    if target and any(redirect_uri_allowed(app, target) for tenant in tenants for app in tenant.apps):
        return sso.forget(_redirect_with(target, {"state": request.args.get("state")}))
    return sso.forget(make_response(pages.signed_out_page()))


def register_oidc_routes(bp: Blueprint) -> None:
    """Add the OpenID Connect endpoints to ``bp``."""

    @bp.get("/<tenant_key>/v2.0/.well-known/openid-configuration")
    def discovery(tenant_key: str):
        if tenant_key.lower() in MULTI_TENANT:
            document = discovery_document(tenant_key.lower(), None)
        else:
            tenant = tenants_of(tenant_key, "invalid_tenant")[0]
            document = discovery_document(tenant.tenant_id, tenant)
        mode = runtime().spoiled.get("discovery")
        return jsonify(document) if mode is None else spoiled_discovery(document, mode)

    @bp.get("/<tenant_key>/discovery/v2.0/keys")
    def jwks(tenant_key: str):
        tenants = tenants_of(tenant_key, "invalid_tenant")
        issuer_of = tenants[0].tenant_id if tenant_key.lower() not in MULTI_TENANT else "{tenantid}"
        key = dict(tokens.signing_key(current_state()).jwk, issuer=tokens.v2_issuer(base_url(), issuer_of))
        mode = runtime().spoiled.get("jwks")
        return jsonify({"keys": [key]}) if mode is None else spoiled_jwks([key], mode)

    bp.add_url_rule("/<tenant_key>/oauth2/v2.0/authorize", "authorize", _authorize, methods=["GET", "POST"])
    bp.add_url_rule("/<tenant_key>/oauth2/v2.0/token", "token", _token, methods=["POST"])
    bp.add_url_rule("/<tenant_key>/oauth2/v2.0/logout", "logout", _logout, methods=["GET", "POST"])
