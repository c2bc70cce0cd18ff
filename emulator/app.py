"""The Flask application: ARM blueprint, Entra blueprint, control API, fault injection and the call log."""
from __future__ import annotations

import contextlib
import json
import socket
import sys
import time
import uuid

from flask import Flask, Response, g, jsonify, request

from emulator.arm.blueprint import create_arm_blueprint
from emulator.control import create_control_blueprint
from emulator.errors import ArmError
from emulator.faults import UNREADABLE, pick_fault
from emulator.state import EmulatorState

CONTROL_PREFIX = "/_emulator"
FAULT_ERRORS = {"403": (403, "AuthorizationFailed", "The client does not have authorization to perform this action "
                                                    "over this scope (injected fault)."),
                "429": (429, "TooManyRequests", "The request was throttled (injected fault)."),
                "500": (500, "InternalServerError", "An internal error occurred (injected fault)."),
                "503": (503, "ServiceUnavailable", "The service is unavailable (injected fault).")}


class CollapseSlashes:
    """WSGI middleware: ``//subscriptions/x`` (an SDK formatting ``/{scope}`` with a leading slash) → ``/...``."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        while "//" in path:
            path = path.replace("//", "/")
        environ["PATH_INFO"] = path
        return self.app(environ, start_response)


def _register_entra(app: Flask) -> None:
    try:
        from emulator.entra import create_entra_blueprint
    except ImportError as exc:  # the Entra side is developed separately; ARM still serves without it
        print(f"emulator: Entra endpoints unavailable ({exc})", file=sys.stderr, flush=True)
        return
    app.register_blueprint(create_entra_blueprint())


def _arm_error(err: ArmError) -> Response:
    response = jsonify(err.body())
    response.status_code = err.status
    for name, value in err.headers.items():
        response.headers[name] = value
    return response


def _drop_connection() -> None:
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _spoil(response: Response, kind: str) -> None:
    """Make a JSON answer one a client cannot read: ``garbled``, its first half (not JSON); ``nulls``, every object
    in a list (the resources of a list, a policy's VMs, a role's permissions) null."""
    if kind == "garbled":
        body = response.get_data()
        response.set_data(body[:len(body) // 2])
        return

    def nulled(item: object) -> object:
        if isinstance(item, dict):
            return {key: nulled(value) for key, value in item.items()}
        if isinstance(item, list):
            return [None if isinstance(value, dict) else nulled(value) for value in item]
        return item

    response.set_data(json.dumps(nulled(response.get_json(silent=True))))


def create_app(state: EmulatorState) -> Flask:
    """The emulator app over ``state`` (kept in ``app.config["EMULATOR_STATE"]``)."""
    app = Flask("emulator")
    app.config["EMULATOR_STATE"] = state
    app.json.sort_keys = False
    app.url_map.strict_slashes = False
    app.wsgi_app = CollapseSlashes(app.wsgi_app)
    app.register_error_handler(ArmError, _arm_error)

    @app.before_request
    def inject_faults():
        g.started = time.monotonic()
        g.calls_epoch = state.calls_epoch  # a call that arrived before the log was cleared is left out of it
        if request.path.startswith(CONTROL_PREFIX):
            return None
        with state.lock:
            fault = pick_fault(state.faults, request.method, request.path, state.rng)
        if fault is None:
            return None
        g.fault = fault.kind
        if fault.kind in UNREADABLE:  # carried out; its answer is spoiled on the way out (``log_call``)
            return None
        if fault.kind == "slow":
            time.sleep(float(fault.delay or 0))
            return None
        if fault.kind == "drop":
            state.log_call(request.method, request.path, request.query_string.decode(), 0, None,
                           epoch=g.get("calls_epoch"))
            _drop_connection()
            return Response(status=500)
        if fault.kind == "404":  # as a reverse proxy or a wrong route answers: plain text, no ARM error code
            return Response("Not Found", status=404, mimetype="text/plain")
        status, code, message = FAULT_ERRORS[fault.kind]
        err = ArmError(status, code, message)
        if fault.kind in ("429", "503") and fault.retry_after is not None:  # ARM sends Retry-After on both
            err.headers["Retry-After"] = str(int(fault.retry_after) if float(fault.retry_after).is_integer()
                                             else fault.retry_after)
        return _arm_error(err)

    @app.after_request
    def log_call(response: Response) -> Response:
        if request.path.startswith(CONTROL_PREFIX) or g.get("fault") == "drop":
            return response
        if g.get("fault") in UNREADABLE and response.is_json:
            _spoil(response, g.fault)
        response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
        response.headers.setdefault("x-ms-correlation-request-id",
                                    request.headers.get("x-ms-correlation-request-id") or str(uuid.uuid4()))
        state.log_call(request.method, request.path, request.query_string.decode(), response.status_code,
                       g.get("caller"), epoch=g.get("calls_epoch"))
        return response

    app.register_blueprint(create_control_blueprint())
    _register_entra(app)
    app.register_blueprint(create_arm_blueprint())
    return app
