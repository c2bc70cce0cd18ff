"""The demo tenant: Contoso's two subscriptions with ~40 VMs in every situation the portal must show."""
from __future__ import annotations

from emulator.scenarios.identities import CONTOSO, DEV_SUBSCRIPTION, PROD_SUBSCRIPTION

LINUX_PORT = {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}
RDP_PORT = {"number": 3389, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}
WINRM_PORTS = [
    {"number": 5985, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"},
    {"number": 5986, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"},
]
PROXY_ONLY_SSH = {"number": 22, "protocol": "TCP", "maxRequestAccessDuration": "PT1H",
                  "allowedSourceAddressPrefixes": ["203.0.113.0/24", "198.51.100.0/24"]}
REQUESTORS = ["alice@contoso.example", "alice@contoso.example", "dave@contoso.example", "alice@contoso.example",
              "erin@contoso.example", "bob@contoso.example"]
REASONS = ["Patch the web tier", "Investigate incident INC-4711", "Deploy hotfix", "Rotate certificates",
           "Database maintenance", "Check logs after alert"]


def _history(vms: list[tuple[str, int]], count: int, offset: float) -> list[dict]:
    """``count`` expired requests over the past week on the given (vm, port) pairs, asked for in Azure itself (before
    the portal: their justifications name no portal request)."""
    items = []
    for k in range(count):
        vm, port = vms[k % len(vms)]
        requestor = REQUESTORS[(k + int(offset)) % len(REQUESTORS)]
        items.append({"vm": vm, "port": port, "requestor": requestor, "hours_ago": round(offset + k * 150 / count, 2),
                      "minutes": (60, 120, 180)[k % 3], "source": f"203.0.113.{10 + k % 40}",
                      "justification": f"{requestor.split('@')[0]}: {REASONS[k % len(REASONS)]}"})
    return items


def _linux(names: list[str], **extra) -> list[dict]:
    return [{"name": n, "os": "Linux", **extra} for n in names]


def _windows(names: list[str], **extra) -> list[dict]:
    return [{"name": n, "os": "Windows", **extra} for n in names]


def demo_scenario() -> dict:
    web = {
        "name": "rg-web-prod", "location": "westeurope",
        "vnets": [{"name": "vnet-web", "address_space": "10.10.0.0/16",
                   "subnets": [{"name": "frontend", "prefix": "10.10.1.0/24", "nsg": "nsg-web-frontend"},
                               {"name": "backend", "prefix": "10.10.2.0/24"}]}],
        "nsgs": [{"name": "nsg-web-frontend", "rules": [
            {"name": "Allow-HTTPS", "properties": {"protocol": "Tcp", "destinationPortRange": "443",
                                                   "access": "Allow", "priority": 200, "direction": "Inbound"}}]}],
        "vms": [
            *_linux(["web-01", "web-02", "web-03"], subnet="frontend"),
            *_linux(["web-04", "web-05"], subnet="frontend", nsg=True),
            {"name": "web-06", "os": "Linux", "subnet": "frontend", "public_ip": "51.105.10.6"},
            *_windows(["web-win-01", "web-win-02"], subnet="backend", nsg=True),
        ],
        "jit_policies": [{
            "name": "default", "created_hours_ago": 200,
            "virtual_machines": [
                {"vm": "web-01", "ports": [LINUX_PORT]},
                {"vm": "web-02", "ports": [LINUX_PORT]},
                {"vm": "web-03", "ports": [PROXY_ONLY_SSH]},
                {"vm": "web-04", "ports": [LINUX_PORT]},
                {"vm": "web-win-01", "ports": [RDP_PORT, *WINRM_PORTS]},
            ],
            "history": _history([("web-01", 22), ("web-02", 22), ("web-win-01", 3389), ("web-04", 22)], 16, 6),
            "open_requests": [{"vm": "web-01", "port": 22, "requestor": "alice@contoso.example", "minutes_left": 90,
                               "source": "203.0.113.7",
                               "justification": "alice: Patch the web tier"}],
        }],
    }
    data = {
        "name": "rg-data-prod", "location": "northeurope",
        "vnets": [{"name": "vnet-data", "address_space": "10.20.0.0/16",
                   "subnets": [{"name": "db", "prefix": "10.20.1.0/24"},
                               {"name": "app", "prefix": "10.20.2.0/24", "nsg": "nsg-data-app"}],
                   "firewall": {"name": "fw-data", "public_ip": "20.50.10.4"}}],
        "vms": [
            *_linux(["db-01", "db-02", "db-03", "db-04"], subnet="db"),
            *_windows(["app-01", "app-02", "app-03"], subnet="app"),
        ],
        "jit_policies": [{
            "name": "default", "created_hours_ago": 190,
            "virtual_machines": [
                {"vm": "db-01", "ports": [LINUX_PORT]},
                {"vm": "db-02", "ports": [LINUX_PORT]},
                {"vm": "app-01", "ports": [RDP_PORT]},
            ],
            "history": _history([("db-01", 22), ("app-01", 3389), ("db-02", 22)], 8, 9),
        }],
    }
    ops = {
        "name": "rg-ops-prod", "location": "westeurope",
        "vnets": [{"name": "vnet-ops", "address_space": "10.30.0.0/16"},
                  {"name": "vnet-ops-ne", "address_space": "10.31.0.0/16", "location": "northeurope"}],
        "vms": [
            {"name": "jump-01", "os": "Windows", "nsg": True, "public_ip": "51.105.20.1"},
            {"name": "jump-02", "os": "Linux", "nsg": True, "public_ip": "51.105.20.2"},
            *_linux(["build-01", "build-02", "build-03", "build-04"]),
            *_windows(["ops-win-01", "ops-win-02", "ops-win-03"], nsg=True),
            *_linux(["monitor-01", "monitor-02"], nsg=True, vnet="vnet-ops-ne", location="northeurope"),
        ],
        "jit_policies": [{
            "name": "default", "created_hours_ago": 180,
            "virtual_machines": [{"vm": "jump-01", "ports": [RDP_PORT]}, {"vm": "jump-02", "ports": [LINUX_PORT]}],
            "history": _history([("jump-01", 3389), ("jump-02", 22)], 6, 12),
        }],
    }
    hub = {  # Azure Firewall Manager: a secured virtual hub whose firewall guards a connected spoke VNet
        "name": "rg-hub-prod", "location": "westeurope",
        "vnets": [{"name": "vnet-spoke", "address_space": "10.40.0.0/16",
                   "subnets": [{"name": "workload", "prefix": "10.40.1.0/24"}]}],
        "virtual_hubs": [{"name": "hub-weu", "address_prefix": "10.100.0.0/23",
                          "firewall": {"name": "fw-hub-weu", "public_ip": "20.61.30.4"},
                          "connections": [{"name": "vnet-spoke-connection", "vnet": "vnet-spoke"}]}],
        "vms": [{"name": "spoke-01", "os": "Linux", "subnet": "workload"},
                {"name": "spoke-win-01", "os": "Windows", "subnet": "workload", "nsg": True}],
    }
    legacy = {
        "name": "rg-legacy-prod", "location": "westeurope", "jit_security_policy": "Off",
        "vms": [*_windows(["legacy-01", "legacy-02"], nsg=True), *_linux(["legacy-03", "legacy-04"], nsg=True)],
        "classic_vms": ["classic-web-01", "classic-sql-01", "classic-app-01"],
    }
    analytics = {
        "name": "rg-analytics-prod", "location": "northeurope",
        "vms": [*_linux(["ana-01", "ana-02", "ana-03", "ana-04"], nsg=True), *_windows(["ana-win-01", "ana-win-02"],
                                                                                      nsg=True)],
    }
    dev = {"name": "rg-dev", "location": "westeurope",
           "vms": [*_linux(["dev-01", "dev-02"], nsg=True), *_windows(["dev-win-01", "dev-win-02"], nsg=True)]}
    test = {"name": "rg-test", "location": "northeurope", "vms": _linux(["test-01", "test-02"], nsg=True)}
    return {
        "name": "demo",
        "identities": "demo",
        "subscriptions": [
            {"id": PROD_SUBSCRIPTION, "name": "Contoso Production", "tenant_id": CONTOSO, "plan": "P2",
             "resource_groups": [web, data, ops, legacy, analytics, hub]},
            {"id": DEV_SUBSCRIPTION, "name": "Contoso Dev/Test", "tenant_id": CONTOSO, "plan": "Free",
             "resource_groups": [dev, test]},
        ],
    }
