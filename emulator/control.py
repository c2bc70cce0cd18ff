"""The control API under ``/_emulator`` (no auth: the server binds loopback only) for tests and demos."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from emulator.faults import Fault
from emulator.jit.engine import expire_due, forget_requests
from emulator.jit.rules import nat_rules
from emulator.scenarios import add_event, apply_scenario
from emulator.state import DEFAULT_PAGE_SIZE
from emulator.store import ResourceId
from emulator.timeutil import iso
from emulator.topology import VM, guards_of


def _state():
    return current_app.config["EMULATOR_STATE"]


def _error(status: int, message: str):
    response = jsonify({"error": message})
    response.status_code = status
    return response


def create_control_blueprint() -> Blueprint:
    bp = Blueprint("control", __name__, url_prefix="/_emulator")

    @bp.get("/health")
    def health():
        state = _state()
        return {"status": "ok", "scenario": state.scenario_name, "now": iso(state.now()),
                "tenants": sorted(state.tenants), "subscriptions": sorted(state.subscriptions)}

    @bp.get("/faults")
    def list_faults():
        with _state().lock:
            return {"value": [f.to_dict() for f in _state().faults.values()]}

    @bp.post("/faults")
    def add_fault():
        body = request.get_json(force=True, silent=True) or {}
        try:
            fault = Fault(path=body["path"], kind=str(body["kind"]), method=body.get("method"),
                          rate=float(body.get("rate", 1.0)), count=body.get("count"),
                          retry_after=body.get("retry_after"), delay=float(body.get("delay", 1.0)))
        except (KeyError, ValueError, TypeError) as exc:
            return _error(400, f"invalid fault: {exc}")
        with _state().lock:
            _state().faults[fault.id] = fault
        return {"id": fault.id}, 201

    @bp.delete("/faults")
    def clear_faults():
        with _state().lock:
            _state().faults.clear()
        return "", 204

    @bp.delete("/faults/<fault_id>")
    def delete_fault(fault_id: str):
        with _state().lock:
            _state().faults.pop(fault_id, None)
        return "", 204

    @bp.get("/calls")
    def calls():
        since = request.args.get("since", type=int, default=0)
        with _state().lock:
            return {"value": [c for c in _state().calls if c["seq"] > since], "last": _state().call_seq}

    @bp.delete("/calls")
    def clear_calls():
        _state().clear_calls()
        return "", 204

    @bp.get("/clock")
    def clock():
        return {"now": iso(_state().now()), "offset_seconds": _state().clock_offset}

    @bp.post("/clock")
    def advance_clock():
        body = request.get_json(force=True, silent=True) or {}
        try:
            seconds = float(body.get("advance_seconds", 0))
        except (TypeError, ValueError):
            return _error(400, "advance_seconds must be a number")
        state = _state()
        with state.lock:
            now = state.advance(seconds)
            expired = expire_due(state)
        return {"now": iso(now), "offset_seconds": state.clock_offset, "expired": expired}

    @bp.post("/config")
    def config():
        body = request.get_json(force=True, silent=True) or {}
        state = _state()
        if "page_size" in body:
            size = body["page_size"]
            if not isinstance(size, int) or size < 1:
                return _error(400, "page_size must be a positive integer")
            state.page_size = size
        return {"page_size": state.page_size}

    @bp.post("/scenario")
    def scenario():
        """Reset the cloud to a scenario (``name`` or ``scenario``); with ``"fresh": true`` also clear the faults and
        the call log and set the default page size, in one call (a test's fresh emulator)."""
        body = request.get_json(force=True, silent=True) or {}
        source = body.get("scenario") or body.get("name") or "demo"
        options = {k: int(body[k]) for k in ("large_vms", "large_events") if k in body}
        state = _state()
        try:
            with state.lock:
                name = apply_scenario(state, source, **options)
                if body.get("fresh") is True:
                    state.faults.clear()
                    state.page_size = DEFAULT_PAGE_SIZE
        except (KeyError, ValueError, TypeError, OSError) as exc:
            return _error(400, f"invalid scenario: {exc!r}")
        if body.get("fresh") is True:
            state.clear_calls()
        return {"scenario": name}

    @bp.post("/jit-requests/forget")
    def forget_jit_requests():
        """Azure no longer lists the records of a policy's requests whose justification contains ``containing``;
        their access stays open until its end."""
        body = request.get_json(force=True, silent=True) or {}
        policy, containing = body.get("policy"), body.get("containing")
        if not isinstance(policy, str) or not isinstance(containing, str) or not containing:
            return _error(400, "policy and containing (not empty) are required")
        state = _state()
        with state.lock:
            return {"forgotten": forget_requests(state, policy, containing)}

    @bp.post("/save")
    def save():
        path = _state().save()
        return {"saved": str(path) if path else None}

    @bp.get("/nsg-rules")
    def nsg_rules():
        vm_id = request.args.get("vm", "")
        state = _state()
        with state.lock:
            rid = ResourceId.parse(vm_id)
            vm = state.resources.get(vm_id) if rid and rid.type == VM else None
            if vm is None:
                return _error(404, f"no virtual machine {vm_id}")
            guards = guards_of(state, vm)
            nsgs = []
            for nsg_id, level in guards.nsgs:
                nsg = state.resources.get(nsg_id)
                nsgs.append({"id": nsg["id"], "level": level,
                             "securityRules": nsg["properties"].get("securityRules", [])})
            firewall = None
            if guards.firewall_id:
                fw = state.resources.get(guards.firewall_id)
                firewall = {"id": fw["id"], "publicIpAddress": guards.firewall_public_ip,
                            "natRuleCollections": fw["properties"].get("natRuleCollections", []),
                            "firewallPolicy": fw["properties"].get("firewallPolicy", {}).get("id"),
                            "natRules": nat_rules(state, fw)}
            return {"vm": vm["id"], "privateIpAddress": guards.private_ip, "nsgs": nsgs, "firewall": firewall}

    @bp.post("/activity")
    def add_activity():
        body = request.get_json(force=True, silent=True) or {}
        events = body.get("events") if isinstance(body, dict) and "events" in body else [body]
        state = _state()
        added = []
        try:
            with state.lock:
                for event in events:
                    added.append(add_event(state, event))
        except (KeyError, ValueError, TypeError) as exc:
            return _error(400, f"invalid event: {exc!r}")
        return {"value": added}, 201

    return bp
