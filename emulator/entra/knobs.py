"""Test knobs under ``/_emulator/entra/``: spoil the next ID token or set its claims, spoil the discovery documents or
the JWKS, change a user's roles and groups or take them off the app (an organisation's refusal, AADSTS50105)."""
from __future__ import annotations

from flask import Blueprint, jsonify, make_response, request

from emulator.entra.issuance import SPOIL_MODES
from emulator.entra.oidc import METADATA_SPOIL_MODES
from emulator.entra.runtime import current_state, runtime


def _strings(body: dict, name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{name} must be a list of strings")
    return list(value)


def register_knob_routes(bp: Blueprint) -> None:
    """Add the Entra test knobs to ``bp``."""

    @bp.route("/_emulator/entra/next-id-token", methods=["GET", "POST", "DELETE"])
    def next_id_token():
        state = current_state()
        with state.lock:
            if request.method == "DELETE":
                runtime().next_id_token = None
            elif request.method == "POST":
                mode = (request.get_json(silent=True) or {}).get("mode")
                if mode not in SPOIL_MODES:
                    return make_response(jsonify({"error": f"mode must be one of {list(SPOIL_MODES)}"}), 400)
                runtime().next_id_token = mode
            return jsonify({"mode": runtime().next_id_token})

    @bp.route("/_emulator/entra/next-id-token-claims", methods=["GET", "POST", "DELETE"])
    def next_id_token_claims():
        """Set claims of the next ID token a code exchange hands out (``{"claims": {name: value}}``, a null value
        removes the claim), signed as usual: a token Entra ID would sign with odd claims."""
        with current_state().lock:
            if request.method == "DELETE":
                runtime().next_id_token_claims = None
            elif request.method == "POST":
                claims = (request.get_json(silent=True) or {}).get("claims")
                if not isinstance(claims, dict):
                    return make_response(jsonify({"error": "claims must be an object"}), 400)
                runtime().next_id_token_claims = claims
            return jsonify({"claims": runtime().next_id_token_claims})

    @bp.route("/_emulator/entra/<any(discovery, jwks):document>", methods=["GET", "POST", "DELETE"])
    def metadata_knob(document: str):
        """Spoil every discovery document (``discovery``) or JWKS (``jwks``) until cleared."""
        modes, spoiled = METADATA_SPOIL_MODES[document], runtime().spoiled
        with current_state().lock:
            if request.method == "DELETE":
                spoiled.pop(document, None)
            elif request.method == "POST":
                mode = (request.get_json(silent=True) or {}).get("mode")
                if mode not in modes:
                    return make_response(jsonify({"error": f"mode must be one of {list(modes)}"}), 400)
                spoiled[document] = mode
            return jsonify({"mode": spoiled.get(document)})

    @bp.route("/_emulator/entra/users/<oid>", methods=["GET", "PUT"])
    def user_knob(oid: str):
        """A user's app roles and groups (``{"app_roles": [...], "groups": [...]}``, each a list of strings), and
        whether they are assigned to the app (``{"assigned": false}``: their sign-in, silent too, is refused with
        ``access_denied`` and AADSTS50105, as for an app that requires assignment, and a code issued before or a refresh
        token is refused with ``invalid_grant`` and AADSTS50105; ``true`` restores it). PUT
        changes only the fields it sends; a field of the wrong type is a 400 that changes nothing."""
        body = request.get_json(silent=True) if request.method == "PUT" and request.data else {}
        if not isinstance(body, dict):
            return make_response(jsonify({"error": "the body must be a JSON object"}), 400)
        state = current_state()
        try:
            roles, groups = _strings(body, "app_roles"), _strings(body, "groups")
        except ValueError as exc:
            return make_response(jsonify({"error": str(exc)}), 400)
        assigned = body.get("assigned")
        if assigned is not None and not isinstance(assigned, bool):
            return make_response(jsonify({"error": "assigned must be true or false"}), 400)
        with state.lock:
            for tenant in state.tenants.values():
                user = tenant.user(oid)
                if user is None:
                    continue
                if request.method == "PUT":
                    if roles is not None:
                        user.app_roles = roles
                    if groups is not None:
                        user.groups = groups
                    if assigned is not None:
                        user.assigned = assigned
                return jsonify({"oid": user.oid, "tenant_id": tenant.tenant_id, "username": user.username,
                                "app_roles": user.app_roles, "groups": user.groups, "assigned": user.assigned})
        return make_response(jsonify({"error": f"no user {oid}"}), 404)
