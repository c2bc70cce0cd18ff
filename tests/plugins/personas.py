"""Personas: real users of the demo tenant, with the claims of a sign-in and the role mappings that apply.

``requester``, ``policy_admin``, ``auditor``, ``approver`` hold their role at the Production subscription
(``IN_SCOPE``); nothing of theirs reaches Dev/Test (``OUT_OF_SCOPE``). ``outsider`` is in the same tenant
with no role. ``sign_in_with_entra`` signs a persona in through the emulator's real sign-in page;
``sign_in_with_client`` does the same with Django's test client, without a browser.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from django.urls import reverse

from accounts import services
from accounts.config import DEMO_TENANT_ID, entra_socialaccount_providers
from accounts.models import RoleMapping

IN_SCOPE = "/subscriptions/c0a1b2c3-0000-4000-8000-000000000001"
OUT_OF_SCOPE = "/subscriptions/c0a1b2c3-0000-4000-8000-000000000002"
WEB_GROUP = "9c1d2e3f-0000-4000-8000-000000000901"


@dataclass(frozen=True)
class Persona:
    username: str
    oid: str
    name: str
    app_roles: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    role: str | None = None  # the portal role its app role maps to at IN_SCOPE

    def claims(self) -> dict:
        return {
            "tid": DEMO_TENANT_ID,
            "oid": self.oid,
            "preferred_username": self.username,
            "name": self.name,
            "roles": list(self.app_roles),
            "groups": list(self.groups),
        }


def _oid(n: int) -> str:
    return f"8a0e7c31-0000-4000-8000-0000000000{n:02d}"


PERSONAS: dict[str, Persona] = {
    "requester": Persona("alice@contoso.example", _oid(1), "Alice Requester", ["JIT.Requester"], [WEB_GROUP],
                         "requester"),
    "policy_admin": Persona("bob@contoso.example", _oid(2), "Bob Security Admin", ["JIT.PolicyAdmin"],
                            role="policy_admin"),
    "auditor": Persona("carol@contoso.example", _oid(3), "Carol Auditor", ["JIT.Auditor"], role="auditor"),
    "approver": Persona("dave@contoso.example", _oid(4), "Dave Approver", ["JIT.Approver"], role="approver"),
    "reader": Persona("frank@contoso.example", _oid(6), "Frank Reader", ["JIT.Reader"], role="reader"),
    "outsider": Persona("oscar@contoso.example", _oid(7), "Oscar Outsider"),
}
# A second approver (Erin), for rules that need two approvals; not part of the authorization matrix.
SECOND_APPROVER = Persona("erin@contoso.example", _oid(5), "Erin Approver", ["JIT.Approver"], role="approver")
APP_ROLE_OF = {"requester": "JIT.Requester", "policy_admin": "JIT.PolicyAdmin", "auditor": "JIT.Auditor",
               "approver": "JIT.Approver", "reader": "JIT.Reader"}


@pytest.fixture
def persona_mappings(db) -> list[RoleMapping]:
    """Each demo app role → its portal role at IN_SCOPE, and the web group → requester in one group."""
    mappings = [
        RoleMapping.objects.create(source_kind=RoleMapping.SourceKind.APP_ROLE, source_value=app_role, role=role,
                                   scope=IN_SCOPE, description=f"{app_role} in Production")
        for role, app_role in APP_ROLE_OF.items()
    ]
    mappings.append(
        RoleMapping.objects.create(source_kind=RoleMapping.SourceKind.GROUP, source_value=WEB_GROUP,
                                   role="requester", scope=f"{IN_SCOPE}/resourceGroups/rg-web-prod",
                                   description="JIT requesters - web")
    )
    return mappings


def make_persona(name: str):
    """A user as the sign-in service records them from the persona's ID token claims."""
    return services.user_sign_in_record(claims=PERSONAS[name].claims())


@pytest.fixture
def requester(persona_mappings):
    return make_persona("requester")


@pytest.fixture
def policy_admin(persona_mappings):
    return make_persona("policy_admin")


@pytest.fixture
def auditor(persona_mappings):
    return make_persona("auditor")


@pytest.fixture
def approver(persona_mappings):
    return make_persona("approver")


@pytest.fixture
def second_approver(persona_mappings):
    return services.user_sign_in_record(claims=SECOND_APPROVER.claims())


@pytest.fixture
def reader(persona_mappings):
    return make_persona("reader")


@pytest.fixture
def outsider(persona_mappings):
    return make_persona("outsider")


@pytest.fixture
def entra_settings(settings, emulator):
    """Point the portal's Entra ID sign-in (and its Microsoft Graph) at the test emulator (its URL and CA)."""
    settings.ENTRA_AUTHORITY = emulator.url
    settings.ENTRA_CA_BUNDLE = str(emulator.ca_pem)
    settings.ENTRA_GRAPH_URL = emulator.url
    settings.SOCIALACCOUNT_PROVIDERS = entra_socialaccount_providers(
        authority=emulator.url, tenant_id=settings.ENTRA_TENANT_ID, client_id=settings.ENTRA_CLIENT_ID,
        secret=settings.ENTRA_CLIENT_SECRET,
    )
    return settings


@pytest.fixture
def entra_page(browser):
    """A page for sign-in tests. Chromium does not know the emulator's private CA, so this context accepts
    the emulator's certificate; the portal itself verifies the emulator's TLS with ENTRA_CA_BUNDLE."""
    context = browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def start_entra_sign_in(page, base_url: str) -> None:
    """Open the portal's sign-in page and press "Sign in with Entra ID" (lands on the emulator's page)."""
    page.goto(f"{base_url}/accounts/login/")
    page.click("#sign-in-with-entra")
    page.wait_for_url(lambda url: not url.startswith(base_url))


def pick_entra_user(page, username: str) -> None:
    """On the emulator's sign-in page, choose the account ``username``."""
    page.get_by_role("button", name=re.compile(re.escape(username), re.IGNORECASE)).click()


def sign_in_with_entra(page, base_url: str, username: str) -> None:
    """Sign ``username`` in through the real flow: portal → emulator's sign-in page → callback → portal."""
    start_entra_sign_in(page, base_url)
    pick_entra_user(page, username)
    page.wait_for_url(lambda url: url.startswith(base_url))


def sign_in_as_breakglass(page, base_url: str) -> None:
    """Sign the local superuser (``breakglass_admin``) in with the password form."""
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "correct-horse-1")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base_url}/")


def sign_in_with_client(client, emulator, oid: str):
    """Sign the user ``oid`` in through the real flow with the test client (which must be served as a loopback
    host the emulator accepts as redirect URI, e.g. ``Client(SERVER_NAME="127.0.0.1")``): the portal's
    redirect, the emulator's account picker, then the callback. Returns the callback's response."""
    return client.get(authorize_with_client(client, emulator, oid))


def authorize_with_client(client, emulator, oid: str) -> str:
    """The first two steps of ``sign_in_with_client``: the portal's redirect and the emulator's account picker
    for ``oid``. Returns the callback URL (path and query) the emulator sends the browser back to."""
    start = client.post(reverse("openid_connect_login", kwargs={"provider_id": "entra"}))
    assert start.status_code == 302, start.content[:300]
    authorize = urlsplit(start["Location"])
    picked = requests.post(f"{authorize.scheme}://{authorize.netloc}{authorize.path}",
                           data=dict(parse_qsl(authorize.query)) | {"user_oid": oid},
                           verify=str(emulator.ca_pem), allow_redirects=False, timeout=10)
    assert picked.status_code == 302, picked.text[:300]
    callback = urlsplit(picked.headers["Location"])
    return f"{callback.path}?{callback.query}"
