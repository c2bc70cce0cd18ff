"""Connection details of an open port: where to connect, and ready-to-paste ``ssh`` / ``mstsc`` / PowerShell
remoting (WinRM) lines.

Behind an Azure Firewall the requester connects to the firewall's public IP on the DNAT port Azure mapped
(``mappedPort``); otherwise to the VM's public IP, or its private IP (over VPN/peering) when it has none.
"""
from __future__ import annotations

from dataclasses import dataclass

SSH_PORTS = {22}
RDP_PORTS = {3389}
WINRM_PORTS = {5985: False, 5986: True}  # port: over HTTPS


@dataclass(frozen=True)
class ConnectionDetails:
    host: str
    port: int
    via: str  # "firewall" | "public" | "private"
    target_port: int  # the port on the VM itself

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def ssh_line(self, user: str = "") -> str:
        login = f"{user}@{self.host}" if user else self.host
        return f"ssh {login} -p {self.port}"

    def mstsc_line(self) -> str:
        return f"mstsc /v:{self.endpoint}"

    def winrm_line(self, user: str = "") -> str:
        credential = f" -Credential {user}" if user else ""
        ssl = " -UseSSL" if WINRM_PORTS[self.target_port] else ""
        return f"Enter-PSSession -ComputerName {self.host} -Port {self.port}{ssl}{credential}"

    def lines(self, *, os_type: str = "", user: str = "") -> list[tuple[str, str]]:
        """(label, command) pairs that fit the port and the VM's OS: SSH for 22/Linux, RDP for 3389/Windows,
        PowerShell remoting for WinRM (5985, 5986 over HTTPS)."""
        if self.target_port in WINRM_PORTS:
            return [("PowerShell", self.winrm_line(user))]
        windows = os_type.lower() == "windows"
        if self.target_port in RDP_PORTS or (windows and self.target_port not in SSH_PORTS):
            return [("RDP", self.mstsc_line())]
        if self.target_port in SSH_PORTS or not windows:
            return [("SSH", self.ssh_line(user))]
        return []


def address_for(*, connection_type: str, public_ip: str, private_ip: str, firewall_public_ip: str
                ) -> tuple[str, str]:
    """(address, kind) the requester connects to for a VM, as the inventory last saw it."""
    if connection_type == "firewall" and firewall_public_ip:
        return firewall_public_ip, "firewall"
    if public_ip:
        return public_ip, "public"
    return private_ip, "private" if private_ip else ""


def details_for(*, address: str, address_kind: str, number: int, mapped_port: int | None) -> ConnectionDetails | None:
    """Connection details of one port, or ``None`` when the VM's address is unknown."""
    if not address:
        return None
    if address_kind == "firewall":
        if not mapped_port:
            return None
        return ConnectionDetails(address, int(mapped_port), "firewall", number)
    return ConnectionDetails(address, number, address_kind or "private", number)


def login_name(username: str) -> str:
    """A likely login for ``ssh``: the part of the UPN before ``@`` (the user edits it when it differs)."""
    return (username or "").split("@", 1)[0]
