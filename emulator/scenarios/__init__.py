"""Scenarios: what the emulated tenant contains at start (``demo``, ``large``, a JSON file, or a dict).

A scenario is a dict; every key is optional unless marked *required*::

    {
      "name": "my-test",                         # shown by /_emulator/health
      "identities": "demo",                      # or a list of EntraTenant dicts (emulator.entra.models shape);
                                                 # an app's "subscriptions" limits where its service principal
                                                 # holds a role (403 AuthorizationFailed elsewhere)
      "subscriptions": [{
        "id": "<guid>",                          # required
        "name": "Contoso Production",
        "tenant_id": "<tenant guid>",            # default: Contoso
        "plan": "P2",                            # Defender for Servers: "P2", "P1" or "Free"
        "jit_security_policy": "On",             # "Off" = JIT disabled by the subscription's security policy
        "resource_groups": [{
          "name": "rg-web",                      # required
          "location": "westeurope",
          "jit_security_policy": "Off",          # per resource group override
          "public_ips": [{"name": "pip-x", "address": "51.1.2.3", "allocation": "Static"}],   # standalone
          "nsgs": [{"name": "nsg-x", "rules": [{"name": "r1", "properties": {...}}]}],
          "vnets": [{"name": "vnet-web", "address_space": "10.1.0.0/16",
                     "subnets": [{"name": "default", "prefix": "10.1.0.0/24", "nsg": "nsg-subnet"}],
                     "firewall": {"name": "fw-web", "public_ip": "20.1.2.3",   # firewall: optional
                                  "policy": "fwpol-web"}}],   # Firewall Manager: its Firewall Policy, optional
          "virtual_hubs": [{"name": "hub-weu", "address_prefix": "10.100.0.0/23",   # Virtual WAN hubs
                            "firewall": {"name": "fw-hub", "public_ip": "20.1.2.4",   # secured hub: optional
                                         "policy": "fwpol-hub"},   # default: "<firewall>-policy" (always one)
                            "connections": [{"name": "to-vnet-web", "vnet": "vnet-web",
                                             "vnet_group": "rg-other",       # default: this group
                                             "vnet_subscription": "<guid>"}]}],   # default: this subscription
          "vms": [{"name": "vm1", "os": "Linux" | "Windows",
                   "vnet": "vnet-web", "subnet": "default",   # default: the group's first vnet / "default"
                   "nsg": true | "nsg-name" | null,           # NIC-level NSG (true = "<vm>-nsg")
                   "public_ip": "51.1.2.3", "private_ip": "10.1.0.9", "location": "...", "size": "..."}],
          "classic_vms": ["old-vm"],             # Microsoft.ClassicCompute VMs
          "jit_policies": [{
            "name": "default", "location": "westeurope",
            "virtual_machines": [{"vm": "vm1", "ports": [{"number": 22, "protocol": "*",
                                   "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}]}],
            "created_hours_ago": 170,            # adds the policy's write events to the Activity Log
            "history": [{"vm": "vm1", "port": 22, "requestor": "alice@contoso.example", "hours_ago": 30,
                         "minutes": 180, "source": "203.0.113.7", "justification": "..."}],  # past, expired
            "open_requests": [{"vm": "vm1", "port": 22, "requestor": "alice@contoso.example",
                               "minutes_left": 90, "source": "203.0.113.7"}]                  # open now
          }]
        }]
      }],
      "activity": [{"resourceId": "...", "operationName": "...", "status": "Succeeded", "caller": "...",
                    "hours_ago": 2, "correlationId": "...", "properties": {...}}],   # or full EventData dicts
      "generated_activity": {...}                # GeneratedActivity fields (used by "large")
    }

Without ``vnets`` a group gets ``<group>-vnet`` with one subnet ``default`` (no NSG). A VM with neither a NIC
NSG, a subnet NSG nor a firewall (in its VNet, or in a secured hub its VNet is connected to) is "not protected"
(JIT refuses it).
"""
from __future__ import annotations

from emulator.scenarios.loader import ScenarioBuilder, add_event, load_spec

__all__ = ["add_event", "apply_scenario", "load_spec"]


def apply_scenario(state, source: str | dict, **options) -> str:
    """Reset ``state`` to the scenario (name, path or dict); return its name."""
    spec, name = load_spec(source, **options)
    ScenarioBuilder(state, spec, name).build()
    return name
