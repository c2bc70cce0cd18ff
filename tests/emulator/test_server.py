"""The server itself: TLS with its own CA, ARM authentication, the call log, restarts with a state file."""
from __future__ import annotations

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError

from emulator.scenarios.identities import FABRIKAM, PROD_SUBSCRIPTION
from tests.emulator.conftest import in_hours, make_arm, policy_path, vm_id

VMS = f"/subscriptions/{PROD_SUBSCRIPTION}/providers/Microsoft.Compute/virtualMachines"


def test_it_serves_https_trusted_only_through_its_own_ca(emulator):
    assert emulator.url.startswith("https://127.0.0.1:")
    assert requests.get(emulator.url + "/_emulator/health", verify=emulator.ca_pem, timeout=10).status_code == 200
    try:
        requests.get(emulator.url + "/_emulator/health", verify=True, timeout=10)
        raised = False
    except requests.exceptions.SSLError:
        raised = True
    assert raised


def test_arm_refuses_a_call_without_a_token(arm):
    response = arm.call("GET", VMS, api_version="2026-04-01", token=None)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AuthenticationFailed"


def test_arm_refuses_a_forged_token(arm):
    response = arm.call("GET", VMS, api_version="2026-04-01", token="eyJhbGciOiJub25lIn0.e30.")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_arm_refuses_a_token_from_another_tenant(fresh_emulator):
    outsider = make_arm(fresh_emulator, tenant=FABRIKAM)
    response = outsider.call("GET", VMS, api_version="2026-04-01")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationTokenTenant"


def test_an_app_is_refused_on_a_subscription_where_it_holds_no_role_and_does_not_see_it_listed(fresh_emulator):
    from emulator.scenarios.demo import demo_scenario
    from emulator.scenarios.identities import DEV_SUBSCRIPTION, demo_identities

    identities = demo_identities()
    identities[0]["apps"][0]["subscriptions"] = [PROD_SUBSCRIPTION]  # the portal's app: a role on Production only
    fresh_emulator.load_scenario({**demo_scenario(), "identities": identities})
    arm = make_arm(fresh_emulator)
    listed = arm.call("GET", "/subscriptions", api_version="2022-12-01").json()["value"]
    assert [s["subscriptionId"] for s in listed] == [PROD_SUBSCRIPTION]
    assert arm.call("GET", VMS, api_version="2026-04-01").status_code == 200
    hubs = f"/subscriptions/{DEV_SUBSCRIPTION}/providers/Microsoft.Network/virtualHubs"
    response = arm.call("GET", hubs, api_version="2026-03-01")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "AuthorizationFailed"
    assert f"'Microsoft.Network/virtualHubs/read' over scope '{hubs}'" in error["message"]


def test_arm_requires_an_api_version(arm):
    response = arm.call("GET", VMS, api_version="")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "MissingApiVersionParameter")


def test_the_call_log_records_arm_calls_with_their_status(arm, fresh_emulator):
    arm.call("GET", VMS, api_version="2026-04-01")
    arm.call("GET", VMS + "/../nothing", api_version="2026-04-01")
    calls = fresh_emulator.calls()
    assert [(c["method"], c["path"], c["status"]) for c in calls if c["path"] == VMS] == [("GET", VMS, 200)]
    last = calls[-1]["seq"]
    assert fresh_emulator.calls(since=last) == []
    fresh_emulator.clear_calls()
    assert fresh_emulator.calls() == []


def test_state_survives_a_restart_with_a_state_file(emulator_factory, tmp_path):
    emu = emulator_factory("demo", state_file=tmp_path / "state.json")
    arm = make_arm(emu)
    body = {"virtualMachines": [{"id": vm_id("rg-web-prod", "web-02"), "ports": [
        {"number": 22, "endTimeUtc": in_hours(2), "allowedSourceAddressPrefix": "198.51.100.77"}]}]}
    assert arm.call("POST", policy_path("rg-web-prod", "westeurope") + "/initiate", json=body).status_code == 202
    emu.advance_clock(600)
    emu.restart()
    assert (tmp_path / "state.json").exists()
    arm = make_arm(emu)
    policy = arm.security().jit_network_access_policies.get("rg-web-prod", "westeurope", "default")
    last = policy.requests[-1].virtual_machines[0].ports[0]
    assert (last.allowed_source_address_prefix, last.status) == ("198.51.100.77", "Initiated")
    assert emu.control("GET", "clock").json()["offset_seconds"] == 600
    view = emu.nsg_rules(vm_id("rg-web-prod", "web-02"))
    rules = [r["properties"]["sourceAddressPrefix"] for n in view["nsgs"] for r in n["securityRules"]
             if r["properties"]["access"] == "Allow" and "JIT" in r["name"]
             and r["properties"]["destinationAddressPrefix"] == view["privateIpAddress"]]
    assert rules == ["198.51.100.77"]
    emu.advance_clock(2 * 3600)
    policy = arm.security().jit_network_access_policies.get("rg-web-prod", "westeurope", "default")
    assert policy.requests[-1].virtual_machines[0].ports[0].status_reason == "Expired"


def test_the_inventory_apis_describe_the_demo_topology(arm):
    compute, network = arm.compute(), arm.network()
    vms = {vm.name: vm for vm in compute.virtual_machines.list_all()}
    assert len(vms) == 38
    assert vms["web-win-01"].storage_profile.os_disk.os_type == "Windows"
    assert vms["web-01"].os_profile.linux_configuration is not None
    assert {vm.location for vm in vms.values()} == {"westeurope", "northeurope"}
    assert len(list(compute.virtual_machines.list("rg-data-prod"))) == 7
    nic = network.network_interfaces.get("rg-web-prod", "web-04-nic")
    assert nic.network_security_group.id.endswith("/web-04-nsg")
    assert nic.ip_configurations[0].subnet.id.endswith("/virtualNetworks/vnet-web/subnets/frontend")
    subnet_nsg = network.network_security_groups.get("rg-web-prod", "nsg-web-frontend")
    assert any(s.id.endswith("/subnets/frontend") for s in subnet_nsg.subnets)
    firewalls = list(network.azure_firewalls.list_all())
    assert [f.name for f in firewalls] == ["fw-data", "fw-hub-weu"]
    pip = network.public_ip_addresses.get("rg-data-prod", "fw-data-pip")
    assert pip.ip_address == "20.50.10.4"
    classic = arm.call("GET", f"/subscriptions/{PROD_SUBSCRIPTION}/providers/Microsoft.ClassicCompute/"
                              f"virtualMachines", api_version="2017-04-01").json()["value"]
    assert len(classic) == 3


def test_a_secured_virtual_hub_and_its_spoke_connection_read_as_azure_returns_them(arm):
    network = arm.network()
    hubs = list(network.virtual_hubs.list())
    assert [h.name for h in hubs] == ["hub-weu"]
    hub = network.virtual_hubs.get("rg-hub-prod", "hub-weu")
    assert hub.azure_firewall.id.endswith("/azureFirewalls/fw-hub-weu") and hub.address_prefix == "10.100.0.0/23"
    connections = list(network.hub_virtual_network_connections.list("rg-hub-prod", "hub-weu"))
    assert [c.name for c in connections] == ["vnet-spoke-connection"]
    assert connections[0].remote_virtual_network.id.endswith("/rg-hub-prod/providers/Microsoft.Network/"
                                                               "virtualNetworks/vnet-spoke")
    one = network.hub_virtual_network_connections.get("rg-hub-prod", "hub-weu", "vnet-spoke-connection")
    assert one.id == connections[0].id
    firewall = network.azure_firewalls.get("rg-hub-prod", "fw-hub-weu")
    assert firewall.virtual_hub.id == hub.id and firewall.sku.name == "AZFW_Hub"
    assert [a.address for a in firewall.hub_ip_addresses.public_i_ps.addresses] == ["20.61.30.4"]
    assert firewall.hub_ip_addresses.private_ip_address.startswith("10.100.")
    assert not firewall.ip_configurations
    with pytest.raises(ResourceNotFoundError):
        list(network.hub_virtual_network_connections.list("rg-hub-prod", "hub-nowhere"))


def test_a_hub_firewalls_firewall_policy_and_its_rule_collection_groups_read_as_azure_returns_them(arm):
    network = arm.network()
    firewall = network.azure_firewalls.get("rg-hub-prod", "fw-hub-weu")
    assert firewall.firewall_policy.id.endswith("/rg-hub-prod/providers/Microsoft.Network/firewallPolicies/"
                                                "fw-hub-weu-policy")
    assert not firewall.nat_rule_collections  # Azure Firewall Manager: the policy holds the rules
    policy = network.firewall_policies.get("rg-hub-prod", "fw-hub-weu-policy")
    assert [f.id for f in policy.properties.firewalls] == [firewall.id]
    assert [p.name for p in network.firewall_policies.list_all()] == ["fw-hub-weu-policy"]
    [group] = network.firewall_policy_rule_collection_groups.list("rg-hub-prod", "fw-hub-weu-policy")
    assert [g.id for g in policy.properties.rule_collection_groups] == [group.id]
    assert group.name == "DefaultNetworkRuleCollectionGroup" and group.properties.priority == 200
    [collection] = group.properties.rule_collections
    assert collection.rule_collection_type == "FirewallPolicyFilterRuleCollection"
    assert [(r.rule_type, r.destination_ports) for r in collection.rules] == [("NetworkRule", ["53"])]
    with pytest.raises(ResourceNotFoundError):
        network.firewall_policy_rule_collection_groups.get("rg-hub-prod", "fw-hub-weu-policy", "nowhere")


def test_security_rules_can_be_tampered_with_out_of_band(arm, fresh_emulator):
    rules = arm.network().security_rules
    rules.begin_create_or_update("rg-web-prod", "web-04-nsg", "Allow-All-SSH", {"properties": {
        "protocol": "Tcp", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*",
        "sourcePortRange": "*", "destinationPortRange": "22", "access": "Allow", "priority": 150,
        "direction": "Inbound"}}).result()
    assert rules.get("rg-web-prod", "web-04-nsg", "Allow-All-SSH").priority == 150
    jit_rule = next(r.name for r in rules.list("rg-web-prod", "web-04-nsg") if r.name.startswith("SecurityCenter"))
    rules.begin_delete("rg-web-prod", "web-04-nsg", jit_rule).result()
    assert jit_rule not in {r.name for r in rules.list("rg-web-prod", "web-04-nsg")}


def test_the_security_policy_lists_jit_off_for_the_legacy_group(arm):
    body = arm.call("GET", f"/subscriptions/{PROD_SUBSCRIPTION}/providers/Microsoft.Security/policies",
                    api_version="2015-06-01-preview").json()
    settings = {p["id"].split("/providers/")[0]: p["properties"]["recommendations"]["jitNetworkAccess"]
                for p in body["value"]}
    assert settings[f"/subscriptions/{PROD_SUBSCRIPTION}"] == "On"
    assert settings[f"/subscriptions/{PROD_SUBSCRIPTION}/resourceGroups/rg-legacy-prod"] == "Off"
    assert settings[f"/subscriptions/{PROD_SUBSCRIPTION}/resourceGroups/rg-web-prod"] == "On"


@pytest.mark.parametrize("body", [[{"properties": {}}], {"properties": ["recommendations"]},
                                  {"properties": {"recommendations": "Off"}}])
def test_a_security_policy_body_of_the_wrong_shape_is_an_arm_400(arm, body):
    response = arm.call("PUT", f"/subscriptions/{PROD_SUBSCRIPTION}/providers/Microsoft.Security/policies/default",
                        api_version="2015-06-01-preview", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "InvalidSecurityPolicy")


def test_pricings_show_plan_2_on_production_only(arm):
    from emulator.scenarios.identities import DEV_SUBSCRIPTION

    prod = arm.security(PROD_SUBSCRIPTION).pricings.get(f"subscriptions/{PROD_SUBSCRIPTION}", "VirtualMachines")
    dev = arm.security(DEV_SUBSCRIPTION).pricings.get(f"subscriptions/{DEV_SUBSCRIPTION}", "VirtualMachines")
    assert (prod.pricing_tier, prod.sub_plan) == ("Standard", "P2")
    assert dev.pricing_tier == "Free"


def test_a_fresh_reset_clears_faults_the_call_log_and_the_page_size_in_one_call(fresh_emulator, arm):
    fresh_emulator.add_fault("/subscriptions/", "500", count=5)
    fresh_emulator.set_page_size(2)
    assert arm.call("GET", VMS, api_version="2026-04-01").status_code == 500
    assert fresh_emulator.calls()

    fresh_emulator.load_scenario("demo")  # without fresh: the test's faults and page size stay
    assert len(fresh_emulator.control("GET", "faults").json()["value"]) == 1
    assert arm.call("GET", VMS, api_version="2026-04-01").status_code == 500

    assert fresh_emulator.reset("demo") == "demo"
    assert fresh_emulator.calls() == []
    answer = arm.call("GET", VMS, api_version="2026-04-01")
    assert answer.status_code == 200 and "nextLink" not in answer.json()  # the default page holds every VM
    assert fresh_emulator.control("GET", "faults").json()["value"] == []


def test_the_server_answers_without_nagles_delay(tmp_path):
    """Each connection has TCP_NODELAY: with Nagle's algorithm, Werkzeug's small writes (session tickets, headers,
    body) each waited for the client's delayed ACK, about 10 ms on every call."""
    import socket
    import ssl
    import threading

    from emulator.__main__ import make_emulator_server
    from emulator.certs import ensure_certs

    def app(environ, start_response):
        connection = environ["werkzeug.socket"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)).encode()]

    certs = ensure_certs(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certs.cert), str(certs.key))
    server = make_emulator_server("127.0.0.1", 0, app, context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        answer = requests.get(f"https://127.0.0.1:{server.server_port}/", verify=str(certs.ca), timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == 200
    assert answer.text != "0"
