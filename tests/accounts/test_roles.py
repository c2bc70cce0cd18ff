"""Portal roles are the seed's permission table, and actions match the way Azure matches them."""
import pytest

from accounts.roles import ROLES, action_matches, is_portal_action

# The seed's table (enable-just-in-time-access: "Permissions to set"), copied by hand.
SEED_READ = {
    "Microsoft.Security/locations/jitNetworkAccessPolicies/read",
    "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
    "Microsoft.Security/policies/read",
    "Microsoft.Security/pricings/read",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Network/*/read",
}
SEED_REQUEST = {
    "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
    "Microsoft.Security/locations/jitNetworkAccessPolicies/*/read",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Network/networkInterfaces/*/read",
    "Microsoft.Network/publicIPAddresses/read",
}
SEED_CONFIGURE = {
    "Microsoft.Security/locations/jitNetworkAccessPolicies/write",
    "Microsoft.Compute/virtualMachines/write",
}


def test_the_azure_roles_hold_exactly_the_seeds_actions():
    assert set(ROLES["reader"].azure_actions) == SEED_READ
    assert set(ROLES["requester"].azure_actions) == SEED_REQUEST
    assert set(ROLES["policy_admin"].azure_actions) == SEED_CONFIGURE | SEED_READ


def test_portal_only_actions_are_kept_apart_from_azure_ones():
    assert is_portal_action("JitPortal/audit/export/action")
    assert not is_portal_action("Microsoft.Compute/virtualMachines/read")
    for role in ROLES.values():
        assert not any(is_portal_action(a) for a in role.azure_actions)
    assert "JitPortal/audit/export/action" in ROLES["auditor"].actions
    assert "JitPortal/requests/approve/action" in ROLES["approver"].actions
    assert not ROLES["auditor"].is_azure_role and not ROLES["approver"].is_azure_role


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("Microsoft.Network/*/read", "Microsoft.Network/networkInterfaces/read", True),
        ("Microsoft.Network/*/read", "Microsoft.Network/networkInterfaces/ipConfigurations/read", True),
        ("Microsoft.Network/*/read", "Microsoft.Network/read", False),
        ("Microsoft.Network/*/read", "Microsoft.Network/networkSecurityGroups/write", False),
        ("Microsoft.Network/*/read", "Microsoft.Compute/virtualMachines/read", False),
        ("microsoft.network/*/READ", "Microsoft.Network/publicIPAddresses/read", True),
        ("Microsoft.Security/locations/jitNetworkAccessPolicies/*/read",
         "Microsoft.Security/locations/jitNetworkAccessPolicies/read", False),
        ("Microsoft.Security/locations/jitNetworkAccessPolicies/*/read",
         "Microsoft.Security/locations/jitNetworkAccessPolicies/requests/read", True),
        ("*", "Microsoft.Compute/virtualMachines/write", True),
        ("Microsoft.Compute/*", "Microsoft.Compute/virtualMachines/write", True),
        ("Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines/read/extra", False),
        ("Microsoft.Compute/virtualMachines/read", "xMicrosoft.Compute/virtualMachines/read", False),
        ("Microsoft.Compute/virtualMachines/re.d", "Microsoft.Compute/virtualMachines/read", False),
        ("Microsoft.Network/networkInterfaces/*/read", "Microsoft.Network/networkInterfaces/read", False),
    ],
)
def test_wildcards_match_as_azure_matches_them(pattern, action, expected):
    assert action_matches(pattern, action) is expected


def test_a_requester_may_initiate_but_not_configure():
    requester = ROLES["requester"]
    assert requester.allows("Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action")
    assert requester.allows("Microsoft.Network/networkInterfaces/ipConfigurations/read")
    assert not requester.allows("Microsoft.Security/locations/jitNetworkAccessPolicies/write")
    assert not requester.allows("Microsoft.Network/networkSecurityGroups/read")
    assert ROLES["policy_admin"].allows("Microsoft.Network/networkSecurityGroups/read")
