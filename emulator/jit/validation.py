"""Body checks for JIT policies and initiate requests, with the error codes the emulator answers."""
from __future__ import annotations

import ipaddress
from datetime import timedelta

from emulator.errors import bad_request
from emulator.timeutil import parse_duration, parse_iso

PROTOCOLS = ("TCP", "UDP", "*")
MIN_DURATION = timedelta(minutes=5)
MAX_DURATION = timedelta(hours=24)
MAX_POLICY_AND_VM_NAME = 56


def parse_prefix(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network | str:
    """``*`` or an IPv4/IPv6 address or CIDR; 400 otherwise."""
    if value == "*":
        return "*"
    if not isinstance(value, str) or not value.strip() or "%" in value:  # no IPv6 zone (fe80::1%eth0) in an NSG
        raise bad_request("InvalidSourceAddressPrefix", f"'{value}' is not an IP address, CIDR or '*'.")
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError as exc:
        raise bad_request("InvalidSourceAddressPrefix", f"'{value}' is not an IP address, CIDR or '*'.") from exc


def _port_number(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise bad_request("InvalidPortNumber", f"{where}: port number must be an integer between 1 and 65535, "
                                               f"got {value!r}.")
    return value


def port_duration(port: dict) -> timedelta:
    return parse_duration(port["maxRequestAccessDuration"])


def allowed_prefixes(port: dict) -> list[str]:
    if port.get("allowedSourceAddressPrefixes"):
        return list(port["allowedSourceAddressPrefixes"])
    return [port.get("allowedSourceAddressPrefix", "*")]


def validate_policy_port(port: object, where: str) -> dict:
    if not isinstance(port, dict):
        raise bad_request("InvalidRequestBody", f"{where} must be an object.")
    number = _port_number(port.get("number"), where)
    where = f"{where} (port {number})"
    protocol = port.get("protocol")
    if protocol is None:
        raise bad_request("MissingRequiredProperty", f"{where}: 'protocol' is required (TCP, UDP or *).")
    if protocol not in PROTOCOLS:
        raise bad_request("InvalidProtocol", f"{where}: protocol must be TCP, UDP or *, got {protocol!r}.")
    duration_text = port.get("maxRequestAccessDuration")
    if duration_text is None:
        raise bad_request("MissingRequiredProperty", f"{where}: 'maxRequestAccessDuration' is required.")
    try:
        duration = parse_duration(duration_text)
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise bad_request("InvalidMaxRequestAccessDuration",
                          f"{where}: '{duration_text}' is not an ISO 8601 duration such as PT3H.") from exc
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise bad_request("InvalidMaxRequestAccessDuration",
                          f"{where}: maxRequestAccessDuration must be between PT5M and PT24H, got {duration_text}.")
    single = port.get("allowedSourceAddressPrefix")
    several = port.get("allowedSourceAddressPrefixes")
    if single is not None and several is not None:
        raise bad_request("ConflictingSourceAddressPrefixes",
                          f"{where}: allowedSourceAddressPrefix and allowedSourceAddressPrefixes cannot be used "
                          f"together.")
    if single is None and several is None:
        raise bad_request("MissingRequiredProperty",
                          f"{where}: one of allowedSourceAddressPrefix or allowedSourceAddressPrefixes is required.")
    if several is not None:
        if not isinstance(several, list) or not several:
            raise bad_request("InvalidSourceAddressPrefix",
                              f"{where}: allowedSourceAddressPrefixes must be a non-empty list.")
        for prefix in several:
            if parse_prefix(prefix) == "*":
                raise bad_request("InvalidSourceAddressPrefix",
                                  f"{where}: '*' is not allowed in allowedSourceAddressPrefixes; use "
                                  f"allowedSourceAddressPrefix.")
    else:
        parse_prefix(single)
    return port


def validate_policy_body(body: object) -> list[dict]:
    """The policy's virtualMachines, checked for shape; 400 with an ARM error otherwise."""
    if not isinstance(body, dict):
        raise bad_request("InvalidRequestBody", "The request body must be a JSON object.")
    props = body.get("properties")
    if not isinstance(props, dict):
        raise bad_request("MissingRequiredProperty", "'properties' is required.")
    vms = props.get("virtualMachines")
    if not isinstance(vms, list):
        raise bad_request("MissingRequiredProperty", "'properties.virtualMachines' is required and must be a list.")
    seen_vms: set[str] = set()
    for i, vm in enumerate(vms):
        where = f"properties.virtualMachines[{i}]"
        if not isinstance(vm, dict) or not isinstance(vm.get("id"), str) or not vm["id"]:
            raise bad_request("MissingRequiredProperty", f"{where}: 'id' is required.")
        if vm["id"].lower() in seen_vms:
            raise bad_request("DuplicateVirtualMachine", f"{where}: virtual machine {vm['id']} is listed twice.")
        seen_vms.add(vm["id"].lower())
        ports = vm.get("ports")
        if not isinstance(ports, list) or not ports:
            raise bad_request("MissingRequiredProperty", f"{where}: 'ports' is required and must not be empty.")
        numbers: set[int] = set()
        for j, port in enumerate(ports):
            validate_policy_port(port, f"{where}.ports[{j}]")
            if port["number"] in numbers:
                raise bad_request("DuplicatePort", f"{where}: port {port['number']} is configured twice.")
            numbers.add(port["number"])
    return vms


def _date_time(value: object, where: str, field: str) -> None:
    try:
        parse_iso(value)
    except (ValueError, TypeError) as exc:
        raise bad_request("InvalidRequestBody", f"{where}: '{field}' must be a UTC date-time, got {value!r}.") from exc


def validate_policy_request(request: object, where: str) -> dict:
    """One entry of a policy's ``properties.requests`` (a JitNetworkAccessRequest), checked for shape."""
    if not isinstance(request, dict) or not all(k in request for k in ("virtualMachines", "startTimeUtc",
                                                                         "requestor")):
        raise bad_request("MissingRequiredProperty", f"{where}: each request needs virtualMachines, startTimeUtc "
                                                     f"and requestor.")
    _date_time(request["startTimeUtc"], where, "startTimeUtc")
    if not isinstance(request["requestor"], str):
        raise bad_request("InvalidRequestBody", f"{where}: 'requestor' must be a string.")
    if request.get("justification") is not None and not isinstance(request["justification"], str):
        raise bad_request("InvalidRequestBody", f"{where}: 'justification' must be a string.")
    if not isinstance(request["virtualMachines"], list):
        raise bad_request("InvalidRequestBody", f"{where}: 'virtualMachines' must be a list.")
    for i, vm in enumerate(request["virtualMachines"]):
        vwhere = f"{where}.virtualMachines[{i}]"
        if not isinstance(vm, dict) or not isinstance(vm.get("id"), str) or not isinstance(vm.get("ports"), list):
            raise bad_request("MissingRequiredProperty", f"{vwhere}: 'id' and 'ports' are required.")
        for j, port in enumerate(vm["ports"]):
            pwhere = f"{vwhere}.ports[{j}]"
            if not isinstance(port, dict) or not all(k in port for k in ("number", "endTimeUtc", "status",
                                                                          "statusReason")):
                raise bad_request("MissingRequiredProperty",
                                  f"{pwhere}: number, endTimeUtc, status and statusReason are required.")
            _port_number(port["number"], pwhere)
            _date_time(port["endTimeUtc"], pwhere, "endTimeUtc")
            if not isinstance(port["status"], str) or not isinstance(port["statusReason"], str):
                raise bad_request("InvalidRequestBody", f"{pwhere}: status and statusReason must be strings.")
    return request


def validate_initiate_body(body: object) -> list[dict]:
    """The initiate request's virtualMachines, checked for shape."""
    if not isinstance(body, dict):
        raise bad_request("InvalidRequestBody", "The request body must be a JSON object.")
    vms = body.get("virtualMachines")
    if not isinstance(vms, list) or not vms:
        raise bad_request("MissingRequiredProperty", "'virtualMachines' is required and must not be empty.")
    seen_vms: set[str] = set()
    for i, vm in enumerate(vms):
        where = f"virtualMachines[{i}]"
        if not isinstance(vm, dict) or not isinstance(vm.get("id"), str) or not vm["id"]:
            raise bad_request("MissingRequiredProperty", f"{where}: 'id' is required.")
        if vm["id"].lower() in seen_vms:
            raise bad_request("DuplicateVirtualMachine", f"{where}: virtual machine {vm['id']} is listed twice.")
        seen_vms.add(vm["id"].lower())
        ports = vm.get("ports")
        if not isinstance(ports, list) or not ports:
            raise bad_request("MissingRequiredProperty", f"{where}: 'ports' is required and must not be empty.")
        numbers: set[int] = set()
        for j, port in enumerate(ports):
            pwhere = f"{where}.ports[{j}]"
            if not isinstance(port, dict):
                raise bad_request("InvalidRequestBody", f"{pwhere} must be an object.")
            number = _port_number(port.get("number"), pwhere)
            if number in numbers:
                raise bad_request("DuplicatePort", f"{where}: port {number} is requested twice.")
            numbers.add(number)
            if "endTimeUtc" not in port:
                raise bad_request("MissingRequiredProperty", f"{pwhere}: 'endTimeUtc' is required.")
            try:
                parse_iso(port["endTimeUtc"])
            except (ValueError, TypeError) as exc:
                raise bad_request("InvalidEndTime",
                                  f"{pwhere}: '{port['endTimeUtc']}' is not a UTC date-time.") from exc
            if port.get("allowedSourceAddressPrefix") is not None:
                parse_prefix(port["allowedSourceAddressPrefix"])
    justification = body.get("justification")
    if justification is not None and not isinstance(justification, str):
        raise bad_request("InvalidRequestBody", "'justification' must be a string.")
    return vms


def prefix_within(requested: str, allowed: list[str]) -> bool:
    """Whether the requested source prefix is covered by one of the port's allowed prefixes."""
    wanted = parse_prefix(requested)
    for prefix in allowed:
        permitted = parse_prefix(prefix)
        if permitted == "*":
            return True
        if wanted == "*":
            continue
        if wanted.version == permitted.version and wanted.subnet_of(permitted):
            return True
    return False
