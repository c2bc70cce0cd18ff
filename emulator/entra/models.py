"""The identity data of an Entra ID tenant, as scenarios describe it."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EntraUser:
    oid: str  # object id (GUID)
    username: str  # preferred_username / UPN, e.g. alice@contoso.example
    display_name: str
    app_roles: list[str] = field(default_factory=list)  # app role VALUES assigned on the portal app
    groups: list[str] = field(default_factory=list)  # group object ids
    # Assigned to the portal app; an unassigned user is refused at sign-in and gets no tokens for a code or a refresh
    # token (AADSTS50105), as Entra ID refuses them when the app requires assignment.
    assigned: bool = True


@dataclass
class EntraGroup:
    oid: str
    display_name: str


@dataclass
class EntraApp:
    client_id: str
    client_secret: str
    display_name: str
    service_principal_oid: str
    # Exact match; loopback (127.0.0.1 / localhost / [::1]) http(s) URIs with ANY port and the same path are
    # also accepted, as Entra does for loopback.
    redirect_uris: list[str] = field(default_factory=list)
    app_roles: list[str] = field(default_factory=list)  # app role values the app defines
    # Microsoft Graph application permissions granted with admin consent (the ``roles`` of its Graph app tokens).
    graph_permissions: list[str] = field(default_factory=list)
    # Subscriptions where the app's service principal holds an Azure role (None: every subscription of its
    # tenant). Elsewhere Resource Manager refuses its app tokens (403 AuthorizationFailed) and does not list them.
    subscriptions: list[str] | None = None


@dataclass
class EntraTenant:
    tenant_id: str
    display_name: str
    domain: str
    users: list[EntraUser] = field(default_factory=list)
    groups: list[EntraGroup] = field(default_factory=list)
    apps: list[EntraApp] = field(default_factory=list)

    def app(self, client_id: str) -> EntraApp | None:
        return next((a for a in self.apps if a.client_id == client_id), None)

    def user(self, oid: str) -> EntraUser | None:
        return next((u for u in self.users if u.oid == oid), None)
