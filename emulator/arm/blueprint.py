"""The ARM blueprint: authenticate, check api-version and the caller's access to the subscription, expire due JIT
grants, dispatch to the router."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, g, jsonify, make_response, request

from emulator.arm.context import ArmContext
from emulator.arm.router import router
from emulator.errors import ArmError, bad_request
from emulator.jit.engine import expire_due

ARM_AUDIENCE = "https://management.azure.com"
METHODS = ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"]


def authenticate(state) -> ArmContext:
    """The bearer token's claims, verified for the ARM audience; 401 with an ARM error otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
                       {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    from emulator.entra.tokens import InvalidToken, verify_access_token

    try:
        claims = verify_access_token(state, token.strip(), audience=ARM_AUDIENCE)
    except InvalidToken as exc:
        raise ArmError(401, "InvalidAuthenticationToken", f"The access token is invalid: {exc}",
                       {"WWW-Authenticate": 'Bearer error="invalid_token"'}) from exc
    caller = (claims.get("upn") or claims.get("preferred_username") or claims.get("unique_name")
              or claims.get("appid") or claims.get("azp") or claims.get("oid") or "unknown")
    return ArmContext(state=state, claims=claims, caller=caller)


def create_arm_blueprint() -> Blueprint:
    """Every path no other blueprint claims is an ARM path."""
    from emulator.arm import authorization, compute, insights, network, resources, security  # noqa: F401 (routes)

    bp = Blueprint("arm", __name__)

    @bp.route("/<path:rest>", methods=METHODS)
    def dispatch(rest: str) -> Response:
        state = current_app.config["EMULATOR_STATE"]
        ctx = authenticate(state)
        g.caller = ctx.caller
        if not request.args.get("api-version"):
            raise bad_request("MissingApiVersionParameter",
                              "The api-version query parameter (?api-version=) is required for all requests.")
        handler, params = router.resolve(request.method, "/" + rest)
        with state.lock:
            ctx.require_access(request.method, "/" + rest)
            expire_due(state)
            result = handler(ctx, **params)
            if isinstance(result, Response):
                return result
            body, status = result if isinstance(result, tuple) else (result, 200)
            if body is None:
                return make_response("", status)
            return make_response(jsonify(body), status)

    return bp
