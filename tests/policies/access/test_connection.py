"""Connection details and the ready-to-paste lines."""
from policies.access.connection import address_for, details_for


def test_a_public_vm_is_reached_on_its_public_ip_and_port():
    address, kind = address_for(connection_type="nsg", public_ip="51.105.20.2", private_ip="10.0.0.4",
                                firewall_public_ip="")
    details = details_for(address=address, address_kind=kind, number=22, mapped_port=None)
    assert details.lines(os_type="Linux", user="alice") == [("SSH", "ssh alice@51.105.20.2 -p 22")]


def test_a_firewall_vm_is_reached_on_the_firewalls_mapped_port():
    address, kind = address_for(connection_type="firewall", public_ip="", private_ip="10.20.2.4",
                                firewall_public_ip="20.50.10.4")
    details = details_for(address=address, address_kind=kind, number=3389, mapped_port=50001)
    assert details.lines(os_type="Windows") == [("RDP", "mstsc /v:20.50.10.4:50001")]


def test_a_private_only_vm_uses_its_private_ip_and_ipv6_is_bracketed():
    assert details_for(address="10.10.1.5", address_kind="private", number=22, mapped_port=None).endpoint == \
        "10.10.1.5:22"
    assert details_for(address="2001:db8::5", address_kind="public", number=3389, mapped_port=None).mstsc_line() == \
        "mstsc /v:[2001:db8::5]:3389"


def test_without_a_mapped_port_a_firewall_vm_has_no_details_yet():
    assert details_for(address="20.50.10.4", address_kind="firewall", number=22, mapped_port=None) is None


def test_winrm_ports_get_a_powershell_remoting_line_not_rdp():
    plain = details_for(address="10.10.2.4", address_kind="private", number=5985, mapped_port=None)
    assert plain.lines(os_type="Windows", user="alice") == [
        ("PowerShell", "Enter-PSSession -ComputerName 10.10.2.4 -Port 5985 -Credential alice")]
    behind = details_for(address="20.50.10.4", address_kind="firewall", number=5986, mapped_port=50002)
    assert behind.lines(os_type="Windows") == [
        ("PowerShell", "Enter-PSSession -ComputerName 20.50.10.4 -Port 50002 -UseSSL")]
