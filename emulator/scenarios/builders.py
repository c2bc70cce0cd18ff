"""ARM resource documents (VMs, NICs, NSGs, VNets, firewalls, virtual hubs, public IPs, pricings) as the APIs
return them."""
from __future__ import annotations

import hashlib
import uuid

PRICING_NAMES = ("VirtualMachines", "SqlServers", "AppServices", "StorageAccounts", "KeyVaults", "Arm", "Containers",
                 "CloudPosture")
NET = "/providers/Microsoft.Network"


def stable_uuid(*parts: str) -> str:
    return str(uuid.UUID(hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]))


def group_id(sub: str, rg: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


def etag() -> str:
    return f'W/"{uuid.uuid4()}"'


def default_security_rules(nsg_id: str) -> list[dict]:
    rows = [
        ("AllowVnetInBound", "Allow inbound traffic from all VMs in VNET", "VirtualNetwork", "VirtualNetwork",
         "Allow", 65000, "Inbound"),
        ("AllowAzureLoadBalancerInBound", "Allow inbound traffic from azure load balancer", "AzureLoadBalancer", "*",
         "Allow", 65001, "Inbound"),
        ("DenyAllInBound", "Deny all inbound traffic", "*", "*", "Deny", 65500, "Inbound"),
        ("AllowVnetOutBound", "Allow outbound traffic from all VMs to all VMs in VNET", "VirtualNetwork",
         "VirtualNetwork", "Allow", 65000, "Outbound"),
        ("AllowInternetOutBound", "Allow outbound traffic from all VMs to Internet", "*", "Internet", "Allow", 65001,
         "Outbound"),
        ("DenyAllOutBound", "Deny all outbound traffic", "*", "*", "Deny", 65500, "Outbound"),
    ]
    return [{
        "name": name, "id": f"{nsg_id}/defaultSecurityRules/{name}", "etag": 'W/"1"',
        "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
        "properties": {"provisioningState": "Succeeded", "description": description, "protocol": "*",
                       "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": source,
                       "destinationAddressPrefix": destination, "access": access, "priority": priority,
                       "direction": direction, "sourcePortRanges": [], "destinationPortRanges": [],
                       "sourceAddressPrefixes": [], "destinationAddressPrefixes": []},
    } for name, description, source, destination, access, priority, direction in rows]


def nsg_resource(sub: str, rg: str, name: str, location: str, rules: list[dict] | None = None) -> dict:
    nsg_id = f"{group_id(sub, rg)}{NET}/networkSecurityGroups/{name}"
    custom = []
    for rule in rules or []:
        custom.append({"name": rule["name"], "id": f"{nsg_id}/securityRules/{rule['name']}", "etag": etag(),
                       "type": "Microsoft.Network/networkSecurityGroups/securityRules",
                       "properties": {"provisioningState": "Succeeded", "sourcePortRange": "*",
                                      "destinationPortRange": "*", "sourceAddressPrefix": "*",
                                      "destinationAddressPrefix": "*", "protocol": "*", "direction": "Inbound",
                                      **rule.get("properties", {})}})
    return {"name": name, "id": nsg_id, "etag": etag(), "type": "Microsoft.Network/networkSecurityGroups",
            "location": location, "properties": {
                "provisioningState": "Succeeded", "resourceGuid": stable_uuid(nsg_id), "securityRules": custom,
                "defaultSecurityRules": default_security_rules(nsg_id), "networkInterfaces": [], "subnets": []}}


def vnet_resource(sub: str, rg: str, name: str, location: str, address_space: str, subnets: list[dict]) -> dict:
    vnet_id = f"{group_id(sub, rg)}{NET}/virtualNetworks/{name}"
    return {"name": name, "id": vnet_id, "etag": etag(), "type": "Microsoft.Network/virtualNetworks",
            "location": location, "properties": {
                "provisioningState": "Succeeded", "resourceGuid": stable_uuid(vnet_id),
                "addressSpace": {"addressPrefixes": [address_space]},
                "subnets": [{
                    "name": s["name"], "id": f"{vnet_id}/subnets/{s['name']}", "etag": etag(),
                    "type": "Microsoft.Network/virtualNetworks/subnets",
                    "properties": {"provisioningState": "Succeeded", "addressPrefix": s["prefix"],
                                   **({"networkSecurityGroup": {"id": s["nsg_id"]}} if s.get("nsg_id") else {}),
                                   "ipConfigurations": []},
                } for s in subnets]}}


def public_ip_resource(sub: str, rg: str, name: str, location: str, address: str,
                       ip_configuration_id: str | None = None) -> dict:
    pip_id = f"{group_id(sub, rg)}{NET}/publicIPAddresses/{name}"
    props = {"provisioningState": "Succeeded", "resourceGuid": stable_uuid(pip_id), "ipAddress": address,
             "publicIPAddressVersion": "IPv6" if ":" in address else "IPv4", "publicIPAllocationMethod": "Static",
             "idleTimeoutInMinutes": 4, "ipTags": []}
    if ip_configuration_id:
        props["ipConfiguration"] = {"id": ip_configuration_id}
    return {"name": name, "id": pip_id, "etag": etag(), "type": "Microsoft.Network/publicIPAddresses",
            "location": location, "sku": {"name": "Standard", "tier": "Regional"}, "properties": props}


def _mac(nic_id: str) -> str:
    digest = hashlib.sha256(nic_id.encode()).hexdigest()[:6].upper()
    return "00-0D-3A-" + "-".join(digest[i:i + 2] for i in range(0, 6, 2))


def nic_resource(sub: str, rg: str, name: str, location: str, *, subnet_id: str, private_ip: str,
                 vm_id: str, nsg_id: str | None = None, public_ip_id: str | None = None) -> dict:
    nic_id = f"{group_id(sub, rg)}{NET}/networkInterfaces/{name}"
    config = {"provisioningState": "Succeeded", "privateIPAddress": private_ip,
              "privateIPAllocationMethod": "Dynamic", "privateIPAddressVersion": "IPv4",
              "subnet": {"id": subnet_id}, "primary": True}
    if public_ip_id:
        config["publicIPAddress"] = {"id": public_ip_id}
    props = {"provisioningState": "Succeeded", "resourceGuid": stable_uuid(nic_id),
             "ipConfigurations": [{"name": "ipconfig1", "id": f"{nic_id}/ipConfigurations/ipconfig1",
                                   "etag": etag(), "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                                   "properties": config}],
             "virtualMachine": {"id": vm_id}, "primary": True, "enableAcceleratedNetworking": False,
             "enableIPForwarding": False, "macAddress": _mac(nic_id), "nicType": "Standard"}
    if nsg_id:
        props["networkSecurityGroup"] = {"id": nsg_id}
    return {"name": name, "id": nic_id, "etag": etag(), "type": "Microsoft.Network/networkInterfaces",
            "location": location, "properties": props}


def vm_resource(sub: str, rg: str, name: str, location: str, *, os_type: str, nic_ids: list[str],
                size: str = "Standard_D2s_v5", tags: dict | None = None) -> dict:
    vm_id = f"{group_id(sub, rg)}/providers/Microsoft.Compute/virtualMachines/{name}"
    windows = os_type.lower() == "windows"
    image = ({"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2022-datacenter-azure-edition",
              "version": "latest"} if windows else
             {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"})
    os_profile = {"computerName": name[:15], "adminUsername": "azureadmin", "secrets": [],
                  "allowExtensionOperations": True}
    if windows:
        os_profile["windowsConfiguration"] = {"provisionVMAgent": True, "enableAutomaticUpdates": True}
    else:
        os_profile["linuxConfiguration"] = {"disablePasswordAuthentication": True, "provisionVMAgent": True}
    return {
        "name": name, "id": vm_id, "type": "Microsoft.Compute/virtualMachines", "location": location,
        "tags": tags or {},
        "properties": {
            "vmId": stable_uuid(vm_id),
            "hardwareProfile": {"vmSize": size},
            "storageProfile": {
                "imageReference": image,
                "osDisk": {"osType": "Windows" if windows else "Linux", "name": f"{name}_OsDisk_1",
                           "createOption": "FromImage", "caching": "ReadWrite", "diskSizeGB": 127 if windows else 30,
                           "managedDisk": {"storageAccountType": "Premium_LRS",
                                           "id": f"{group_id(sub, rg)}/providers/Microsoft.Compute/disks/"
                                                 f"{name}_OsDisk_1"}},
                "dataDisks": [],
            },
            "osProfile": os_profile,
            "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": i == 0}}
                                                     for i, nic_id in enumerate(nic_ids)]},
            "provisioningState": "Succeeded",
            "timeCreated": "2024-03-01T09:00:00.0000000+00:00",
        },
    }


def classic_vm_resource(sub: str, rg: str, name: str, location: str) -> dict:
    vm_id = f"{group_id(sub, rg)}/providers/Microsoft.ClassicCompute/virtualMachines/{name}"
    return {"name": name, "id": vm_id, "type": "Microsoft.ClassicCompute/virtualMachines", "location": location,
            "properties": {"provisioningState": "Succeeded",
                           "hardwareProfile": {"size": "Small", "platformGuestAgent": True,
                                               "deploymentName": name, "deploymentId": stable_uuid(vm_id)[:32]},
                           "instanceView": {"status": "ReadyRole", "powerState": "Started"},
                           "domainName": {"name": name, "type": "Microsoft.ClassicCompute/domainNames",
                                          "id": f"{group_id(sub, rg)}/providers/Microsoft.ClassicCompute/"
                                                f"domainNames/{name}"}}}


def firewall_resource(sub: str, rg: str, name: str, location: str, *, subnet_id: str, public_ip_id: str,
                      private_ip: str, firewall_policy_id: str | None = None) -> dict:
    """An Azure Firewall in a VNet; with ``firewall_policy_id`` its Firewall Policy configures it."""
    fw_id = f"{group_id(sub, rg)}{NET}/azureFirewalls/{name}"
    return {"name": name, "id": fw_id, "etag": etag(), "type": "Microsoft.Network/azureFirewalls",
            "location": location, "properties": {
                **({"firewallPolicy": {"id": firewall_policy_id}} if firewall_policy_id else {}),
                "provisioningState": "Succeeded", "threatIntelMode": "Alert",
                "sku": {"name": "AZFW_VNet", "tier": "Standard"},
                "ipConfigurations": [{"name": "azureFirewallIpConfiguration", "etag": etag(),
                                      "id": f"{fw_id}/azureFirewallIpConfigurations/azureFirewallIpConfiguration",
                                      "properties": {"provisioningState": "Succeeded", "privateIPAddress": private_ip,
                                                     "subnet": {"id": subnet_id},
                                                     "publicIPAddress": {"id": public_ip_id}}}],
                "natRuleCollections": [], "networkRuleCollections": [], "applicationRuleCollections": []}}


def virtual_hub_resource(sub: str, rg: str, name: str, location: str, *, address_prefix: str,
                         firewall_id: str | None = None) -> dict:
    """A Virtual WAN hub; with ``firewall_id`` it is a secured virtual hub (Azure Firewall Manager)."""
    hub_id = f"{group_id(sub, rg)}{NET}/virtualHubs/{name}"
    props = {"provisioningState": "Succeeded", "addressPrefix": address_prefix, "sku": "Standard",
             "virtualWan": {"id": f"{group_id(sub, rg)}{NET}/virtualWans/{name}-wan"},
             "virtualHubRouteTableV2s": [], "routingState": "Provisioned", "hubRoutingPreference": "ExpressRoute",
             "virtualRouterAsn": 65515, "virtualRouterIps": [], "allowBranchToBranchTraffic": False}
    if firewall_id:
        props["azureFirewall"] = {"id": firewall_id}
    return {"name": name, "id": hub_id, "etag": etag(), "type": "Microsoft.Network/virtualHubs", "kind": "",
            "location": location, "tags": {}, "properties": props}


def hub_connection_resource(hub_id: str, name: str, vnet_id: str) -> dict:
    """A hub virtual network connection: the spoke ``vnet_id`` connected to the hub."""
    return {"name": name, "id": f"{hub_id}/hubVirtualNetworkConnections/{name}", "etag": etag(),
            "properties": {"provisioningState": "Succeeded", "remoteVirtualNetwork": {"id": vnet_id},
                           "allowHubToRemoteVnetTransit": True, "allowRemoteVnetToUseHubVnetGateways": True,
                           "enableInternetSecurity": True}}


def hub_firewall_resource(sub: str, rg: str, name: str, location: str, *, hub_id: str, public_ip: str,
                          private_ip: str, firewall_policy_id: str) -> dict:
    """An Azure Firewall in a secured virtual hub: no ``ipConfigurations``; its addresses are the hub's, and its
    Firewall Policy configures it (Azure Firewall Manager)."""
    fw_id = f"{group_id(sub, rg)}{NET}/azureFirewalls/{name}"
    return {"name": name, "id": fw_id, "etag": etag(), "type": "Microsoft.Network/azureFirewalls",
            "location": location, "properties": {
                "provisioningState": "Succeeded", "threatIntelMode": "Alert",
                "sku": {"name": "AZFW_Hub", "tier": "Standard"},
                "virtualHub": {"id": hub_id}, "firewallPolicy": {"id": firewall_policy_id},
                "hubIPAddresses": {"privateIPAddress": private_ip,
                                   "publicIPs": {"addresses": [{"address": public_ip}], "count": 1}},
                "natRuleCollections": [], "networkRuleCollections": [], "applicationRuleCollections": []}}


def firewall_policy_resources(sub: str, rg: str, name: str, location: str, *, firewall_id: str) -> list[dict]:
    """A Firewall Policy (Azure Firewall Manager) configuring ``firewall_id`` and its one rule collection group so
    far, of network rules (spokes may resolve DNS)."""
    policy_id = f"{group_id(sub, rg)}{NET}/firewallPolicies/{name}"
    group = {"name": "DefaultNetworkRuleCollectionGroup", "id": f"{policy_id}/ruleCollectionGroups/"
                                                                "DefaultNetworkRuleCollectionGroup",
             "etag": etag(), "type": "Microsoft.Network/FirewallPolicies/RuleCollectionGroups",
             "properties": {"provisioningState": "Succeeded", "priority": 200, "ruleCollections": [{
                 "ruleCollectionType": "FirewallPolicyFilterRuleCollection", "name": "spokes-out", "priority": 200,
                 "action": {"type": "Allow"}, "rules": [{
                     "ruleType": "NetworkRule", "name": "dns", "ipProtocols": ["UDP", "TCP"],
                     "sourceAddresses": ["10.0.0.0/8"], "destinationAddresses": ["*"], "destinationPorts": ["53"],
                     "sourceIpGroups": [], "destinationIpGroups": [], "destinationFqdns": []}]}]}}
    policy = {"name": name, "id": policy_id, "etag": etag(), "type": "Microsoft.Network/firewallPolicies",
              "location": location, "properties": {
                  "provisioningState": "Succeeded", "threatIntelMode": "Alert", "sku": {"tier": "Standard"},
                  "ruleCollectionGroups": [{"id": group["id"]}], "firewalls": [{"id": firewall_id}],
                  "childPolicies": []}}
    return [policy, group]


def pricing_resource(sub: str, name: str, tier: str, sub_plan: str | None = None,
                     enablement_time: str = "2024-01-15T08:00:00.0000000Z") -> dict:
    props: dict = {"pricingTier": tier, "freeTrialRemainingTime": "PT0S", "enforce": "False", "extensions": []}
    if tier == "Standard":
        props["enablementTime"] = enablement_time
        props["resourcesCoverageStatus"] = "FullyCovered"
        if sub_plan:
            props["subPlan"] = sub_plan
        if name == "VirtualMachines":
            props["extensions"] = [{"name": "MdeDesignatedSubscription", "isEnabled": "False"},
                                   {"name": "AgentlessVmScanning", "isEnabled": "True"}]
    return {"id": f"/subscriptions/{sub}/providers/Microsoft.Security/pricings/{name}", "name": name,
            "type": "Microsoft.Security/pricings", "properties": props}
