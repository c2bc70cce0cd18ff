"""The gateway's list and read methods return the demo tenant as plain dataclasses."""
from __future__ import annotations

from datetime import datetime

from cloud import types
from tests.cloud.conftest import DEV, PROD, arm_calls, vm_id

HUB_ID = f"/subscriptions/{PROD}/resourceGroups/rg-hub-prod/providers/Microsoft.Network/virtualHubs/hub-weu"


def by_name(items) -> dict:
    return {item.name: item for item in items}


def test_it_lists_the_subscriptions_its_identity_can_read_in_its_tenant(gateway, fresh_emulator):
    subscriptions = list(gateway.list_subscriptions())

    assert [(s.subscription_id, s.display_name, s.state) for s in subscriptions] == [
        (PROD, "Contoso Production", "Enabled"), (DEV, "Contoso Dev/Test", "Enabled")]
    assert {s.tenant_id for s in subscriptions} == {"8a0e7c31-4a8e-4d8b-9d2a-6f6a1b2c3d4e"}
    assert [(c["method"], c["path"]) for c in arm_calls(fresh_emulator)] == [("GET", "/subscriptions")]
    assert gateway.calls_made == 1


def test_a_gateway_for_another_subscription_shares_the_credential_and_the_call_count(gateway, fresh_emulator):
    list(gateway.list_virtual_hubs())
    with gateway.for_subscription(DEV) as dev:
        assert dev.subscription_id == DEV and list(dev.list_virtual_hubs()) == []

    assert gateway.calls_made == dev.calls_made == 2
    assert [c["path"].split("/")[2] for c in arm_calls(fresh_emulator)] == [PROD, DEV]
    assert len([c for c in fresh_emulator.calls() if c["path"].endswith("/oauth2/v2.0/token")]) == 1


def test_it_lists_every_vm_of_the_subscription_with_os_nics_and_place(gateway):
    vms = by_name(gateway.list_virtual_machines())

    assert len(vms) == 38
    assert all(isinstance(vm, types.VirtualMachine) for vm in vms.values())
    web = vms["web-01"]
    assert web.id == vm_id("web-01")
    assert (web.resource_group, web.location, web.os_type) == ("rg-web-prod", "westeurope", "Linux")
    assert web.network_interface_ids == (
        f"/subscriptions/{PROD}/resourceGroups/rg-web-prod/providers/Microsoft.Network/networkInterfaces/web-01-nic",)
    assert vms["web-win-01"].os_type == "Windows"
    assert vms["monitor-01"].location == "northeurope"


def test_it_lists_classic_vms_through_the_classic_compute_api(gateway):
    classic = by_name(gateway.list_classic_virtual_machines())

    assert set(classic) == {"classic-web-01", "classic-sql-01", "classic-app-01"}
    vm = classic["classic-web-01"]
    assert isinstance(vm, types.ClassicVirtualMachine)
    assert vm.resource_group == "rg-legacy-prod"
    assert "/providers/Microsoft.ClassicCompute/virtualMachines/" in vm.id
    assert vm.power_state == "Started"


def test_a_subscription_without_classic_vms_lists_none(dev_gateway):
    assert list(dev_gateway.list_classic_virtual_machines()) == []


def test_it_lists_nics_with_private_ip_subnet_public_ip_and_nsg(gateway):
    nics = by_name(gateway.list_network_interfaces())

    web06 = nics["web-06-nic"]
    assert web06.virtual_machine_id == vm_id("web-06")
    assert web06.private_ip_addresses and web06.private_ip_addresses[0].startswith("10.10.1.")
    assert web06.subnet_id.endswith("/virtualNetworks/vnet-web/subnets/frontend")
    assert web06.public_ip_address_ids == (
        f"/subscriptions/{PROD}/resourceGroups/rg-web-prod/providers/Microsoft.Network/publicIPAddresses/web-06-ip",)
    assert web06.network_security_group_id is None
    assert nics["web-04-nic"].network_security_group_id.endswith("/networkSecurityGroups/web-04-nsg")


def test_it_lists_nsgs_with_their_rules_subnets_and_nics(gateway):
    nsgs = by_name(gateway.list_network_security_groups())

    frontend = nsgs["nsg-web-frontend"]
    assert frontend.resource_group == "rg-web-prod"
    assert [s.rsplit("/", 1)[1] for s in frontend.subnet_ids] == ["frontend"]
    https = next(r for r in frontend.security_rules if r.name == "Allow-HTTPS")
    assert (https.priority, https.direction, https.access, https.protocol) == (200, "Inbound", "Allow", "Tcp")
    assert https.destination_port_ranges == ("443",)
    assert nsgs["web-04-nsg"].network_interface_ids[0].endswith("/networkInterfaces/web-04-nic")


def test_it_lists_public_ips_with_their_addresses(gateway):
    addresses = {pip.name: pip.address for pip in gateway.list_public_ips()}

    assert addresses["web-06-ip"] == "51.105.10.6"
    assert "20.50.10.4" in addresses.values()  # the firewall's


def test_it_lists_firewalls_with_their_vnet_and_public_ip(gateway):
    firewalls = list(gateway.list_firewalls())
    public_ips = {pip.id.lower(): pip.address for pip in gateway.list_public_ips()}

    assert [fw.name for fw in firewalls] == ["fw-data", "fw-hub-weu"]
    firewall = firewalls[0]
    assert firewall.virtual_network_ids == (
        f"/subscriptions/{PROD}/resourceGroups/rg-data-prod/providers/Microsoft.Network/virtualNetworks/vnet-data",)
    assert [public_ips[p.lower()] for p in firewall.public_ip_address_ids] == ["20.50.10.4"]
    assert firewall.private_ip_addresses and firewall.virtual_hub_id is None


def test_it_lists_a_hub_firewall_with_its_hub_and_the_hubs_addresses(gateway):
    hub_firewall = by_name(gateway.list_firewalls())["fw-hub-weu"]

    assert hub_firewall.virtual_hub_id == HUB_ID
    assert hub_firewall.hub_public_ip_addresses == ("20.61.30.4",)
    assert hub_firewall.hub_private_ip_address and hub_firewall.hub_private_ip_address.startswith("10.100.")
    assert hub_firewall.ip_configurations == () and hub_firewall.virtual_network_ids == ()


def test_it_lists_virtual_hubs_and_each_hubs_spoke_connections(gateway, fresh_emulator):
    hubs = list(gateway.list_virtual_hubs())

    assert [(h.id, h.resource_group, h.location, h.address_prefix) for h in hubs] == [
        (HUB_ID, "rg-hub-prod", "westeurope", "10.100.0.0/23")]
    assert isinstance(hubs[0], types.VirtualHub) and hubs[0].firewall_id.endswith("/azureFirewalls/fw-hub-weu")
    fresh_emulator.clear_calls()
    connections = list(gateway.list_hub_virtual_network_connections("rg-hub-prod", "hub-weu"))
    assert [(c.name, c.virtual_hub_id, c.remote_virtual_network_id) for c in connections] == [
        ("vnet-spoke-connection", HUB_ID,
         f"/subscriptions/{PROD}/resourceGroups/rg-hub-prod/providers/Microsoft.Network/virtualNetworks/vnet-spoke")]
    assert [c["path"] for c in arm_calls(fresh_emulator)] == [f"{HUB_ID}/hubVirtualNetworkConnections"]


def test_it_lists_virtual_networks_with_subnets_and_their_nsgs(gateway):
    vnets = by_name(gateway.list_virtual_networks())

    web = vnets["vnet-web"]
    assert web.address_prefixes == ("10.10.0.0/16",)
    subnets = {s.name: s for s in web.subnets}
    assert subnets["frontend"].network_security_group_id.endswith("/nsg-web-frontend")
    assert subnets["backend"].network_security_group_id is None


def test_it_lists_jit_policies_with_vms_ports_and_requests(gateway):
    policies = {p.resource_group: p for p in gateway.list_jit_policies()}

    assert set(policies) == {"rg-web-prod", "rg-data-prod", "rg-ops-prod"}
    web = policies["rg-web-prod"]
    assert (web.name, web.location, web.kind, web.provisioning_state) == ("default", "westeurope", "Basic",
                                                                         "Succeeded")
    ports = {vm.id.rsplit("/", 1)[1]: vm.ports for vm in web.vms}
    assert set(ports) == {"web-01", "web-02", "web-03", "web-04", "web-win-01"}
    assert ports["web-01"] == (types.JitPolicyPort(22, "*", "*", (), "PT3H"),)
    proxy = ports["web-03"][0]
    assert proxy.allowed_source_address_prefix is None
    assert proxy.sources == ("203.0.113.0/24", "198.51.100.0/24")
    assert [p.number for p in ports["web-win-01"]] == [3389, 5985, 5986]
    open_now = [r for r in web.requests if any(p.status == "Initiated" for vm in r.vms for p in vm.ports)]
    assert [r.requestor for r in open_now] == ["alice@contoso.example"]
    port = open_now[0].vms[0].ports[0]
    assert port.allowed_source_address_prefix == "203.0.113.7"
    assert isinstance(port.end_time_utc, datetime) and port.end_time_utc.utcoffset().total_seconds() == 0


def test_it_reads_the_defender_plan_and_says_whether_jit_is_available(gateway, dev_gateway):
    prod = gateway.get_pricing("VirtualMachines")
    dev = dev_gateway.get_pricing()

    assert (prod.name, prod.tier, prod.sub_plan, prod.jit_available) == ("VirtualMachines", "Standard", "P2", True)
    assert (dev.tier, dev.jit_available) == ("Free", False)


def test_it_lists_the_legacy_security_policies_with_jit_off_for_the_legacy_group(gateway):
    policies = list(gateway.list_security_policies())

    subscription = [p for p in policies if p.policy_level == "Subscription"]
    assert len(subscription) == 1 and subscription[0].jit_enabled and subscription[0].resource_group is None
    off = {p.resource_group for p in policies if not p.jit_enabled}
    assert off == {"rg-legacy-prod"}
    assert all(p.scope.startswith(f"/subscriptions/{PROD}") for p in policies)


def test_it_reads_one_nsg_with_the_rules_jit_wrote_into_it(gateway):
    nsg = gateway.get_network_security_group("rg-web-prod", "nsg-web-frontend")

    assert nsg.name == "nsg-web-frontend"
    rules = {r.name: r for r in nsg.rules}
    assert "Allow-HTTPS" in rules
    jit = [r for r in rules.values() if r.name.startswith("SecurityCenter-JITRule") and "web-01" in r.name]
    assert {r.access for r in jit} == {"Allow", "Deny"}  # alice's open request on web-01:22
    allow = next(r for r in jit if r.access == "Allow")
    assert allow.destination_port_ranges == ("22",) and allow.source_address_prefixes == ("203.0.113.7",)


def test_it_counts_calls_and_keeps_azures_request_id(gateway, fresh_emulator):
    list(gateway.list_virtual_machines())
    gateway.get_pricing()

    assert gateway.calls_made == 2
    assert len(gateway.last_request_id) == 36
    assert [c["path"].rsplit("/", 1)[1] for c in arm_calls(fresh_emulator)] == ["virtualMachines", "VirtualMachines"]
