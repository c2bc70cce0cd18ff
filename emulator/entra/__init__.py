"""The emulated Entra ID (OpenID Connect, OAuth 2.0 token endpoint) and the Graph calls the portal makes."""
from __future__ import annotations

from flask import Blueprint
from flask.blueprints import BlueprintSetupState

from emulator.entra.errors import EntraError, GraphError, entra_error_response, graph_error_response
from emulator.entra.graph import register_graph_routes
from emulator.entra.keys import load_or_create
from emulator.entra.knobs import register_knob_routes
from emulator.entra.oidc import register_oidc_routes
from emulator.entra.runtime import EntraRuntime

__all__ = ["create_entra_blueprint"]


def _set_up(setup: BlueprintSetupState) -> None:
    """Give the app its Entra runtime (codes, refresh tokens) and make the signing key at start."""
    setup.app.extensions.setdefault("entra", EntraRuntime())
    state = setup.app.config.get("EMULATOR_STATE")
    if state is not None:
        load_or_create(state.cert_dir)


def create_entra_blueprint() -> Blueprint:
    """All Entra ID and Graph routes of the emulator, plus its Entra test knobs."""
    bp = Blueprint("entra", __name__)
    bp.record_once(_set_up)
    bp.register_error_handler(EntraError, entra_error_response)
    bp.register_error_handler(GraphError, graph_error_response)
    register_oidc_routes(bp)
    register_graph_routes(bp)
    register_knob_routes(bp)
    return bp
