"""The authorization matrix, generated from the URL configuration.

Every URL must declare who may open it (``accounts.access``). For every URL x persona x (object in scope,
out of scope) the response must be what the declaration and the persona's role say: anonymous visitors are
sent to sign in, users without the action get 403 on a page and 404 on an object (never a hint that it
exists), users with it get through; an object only its owner may open (``owner_only``) is a 404 to everyone
else. A URL without a declaration fails ``test_every_url_declares_…``.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver, path, reverse
from django.utils import timezone

from accounts.access import AccessRule, Audience, public, rule_for
from accounts.models import RoleMapping
from accounts.roles import ROLES
from accounts.scopes import parse_scope
from audit.models import ActivityLogEvent, AuditEvent
from audit.services import audit_record
from policies.models import PolicyChange, Subscription, VirtualMachine
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE, PERSONAS, make_persona
from tests.policies import factories as policy_factories


@dataclass(frozen=True)
class Route:
    pattern: str
    callback: Callable
    name: str | None
    namespace: str | None

    @property
    def view_name(self) -> str | None:
        if not self.name:
            return None
        return f"{self.namespace}:{self.name}" if self.namespace else self.name

    @property
    def rule(self) -> AccessRule | None:
        return rule_for(self.callback, self.namespace)


def iter_routes(patterns=None, prefix: str = "", namespace: str | None = None) -> Iterator[tuple[Route, URLPattern]]:
    """Every URL pattern of the URL configuration, with its full route and namespace."""
    patterns = get_resolver().url_patterns if patterns is None else patterns
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from iter_routes(entry.url_patterns, prefix + str(entry.pattern), inner)
        else:
            yield Route(prefix + str(entry.pattern), entry.callback, entry.name, namespace), entry


def routes_without_rules(patterns=None) -> list[str]:
    return [route.pattern for route, _ in iter_routes(patterns) if route.rule is None]


def kwarg_names(pattern: URLPattern) -> list[str]:
    converters = getattr(pattern.pattern, "converters", None)
    if converters:
        return list(converters)
    return list(pattern.pattern.regex.groupindex)


ALL_ROUTES = list(iter_routes())
PORTAL_ROUTES = [(r, p) for r, p in ALL_ROUTES if r.rule is not None and r.rule.audience is not Audience.STAFF]
SAMPLE_KWARGS = {"provider_id": "entra"}
SCOPES = {"in": f"{IN_SCOPE}/resourceGroups/rg-matrix", "out": f"{OUT_OF_SCOPE}/resourceGroups/rg-matrix"}
# Pages that need a query to show anything: what to ask for (an object in the personas' scope).
SAMPLE_QUERY = {
    "audit:vm_timeline": {"vm": f"{SCOPES['in']}/providers/Microsoft.Compute/virtualMachines/vm-1"},
}


def make_role_mapping(scope: str) -> RoleMapping:
    return RoleMapping.objects.create(source_kind="group", source_value="0000aaaa-0000-4000-8000-00000000beef",
                                      role="reader", scope=scope, description="matrix probe")


def _place(scope: str) -> dict:
    parsed = parse_scope(scope)
    return {"subscription_id": parsed.subscription_id, "resource_group": (parsed.resource_group or "").lower(),
            "resource_id": f"{scope}/providers/Microsoft.Compute/virtualMachines/vm-matrix".lower()}


def make_audit_event(scope: str) -> AuditEvent:
    return audit_record(actor=None, action="matrix.probe", target_type="vm", target_label="vm-matrix",
                        **_place(scope))


def make_activity_event(scope: str) -> ActivityLogEvent:
    place = _place(scope)
    return ActivityLogEvent.objects.create(
        event_data_id=f"matrix-{place['subscription_id']}", occurred_at=timezone.now(),
        operation_name="Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
        vm_ids=f" {place['resource_id']} ", **place,
    )


def discovered_factories() -> dict[type, Callable[[str], object]]:
    """``MATRIX_FACTORIES`` of every ``tests/<app>/factories.py`` that declares them."""
    found: dict[type, Callable[[str], object]] = {}
    for app in apps.get_app_configs():
        try:
            module = importlib.import_module(f"tests.{app.label}.factories")
        except ModuleNotFoundError:
            continue
        found.update(getattr(module, "MATRIX_FACTORIES", {}))
    return found


# Object pages: how to make an object of each model at a given scope. A new object view adds its model here
# (or declares ``MATRIX_FACTORIES = {Model: make_at_scope}`` in its app's ``tests/<app>/factories.py``).
OBJECT_FACTORIES: dict[type, Callable[[str], object]] = {
    RoleMapping: make_role_mapping,
    AuditEvent: make_audit_event,
    ActivityLogEvent: make_activity_event,
    Subscription: policy_factories.make_subscription,
    VirtualMachine: policy_factories.make_vm,
    PolicyChange: policy_factories.make_policy_change,
    **discovered_factories(),
}

PERSONA_NAMES = ["anonymous", "superuser", *PERSONAS]


def cases() -> Iterator:
    for route, pattern in PORTAL_ROUTES:
        scopes = ["in", "out"] if route.rule.on_object else [None]
        for persona in PERSONA_NAMES:
            for scope in scopes:
                case_id = f"{route.view_name or route.pattern}-{persona}" + (f"-{scope}" if scope else "")
                yield pytest.param(route, pattern, persona, scope, id=case_id)


def persona_may(persona: str, action: str) -> bool:
    if persona == "superuser":
        return True
    role = PERSONAS[persona].role
    if role is None:
        return False
    return ROLES[role].allows(action)


def expected_outcome(rule: AccessRule, persona: str, scope: str | None) -> str:
    """``login`` (sent to sign in), ``403``, ``404`` or ``allowed``."""
    if rule.audience is Audience.PUBLIC:
        return "allowed"
    if persona == "anonymous":
        return "login"
    if rule.audience is Audience.AUTHENTICATED:
        return "allowed"
    if rule.audience is Audience.OWNER:
        return "404"  # the object is someone else's: whatever the role, break-glass staff too
    allowed = any(persona_may(persona, action) for action in rule.actions)
    if rule.on_object:
        return "allowed" if allowed and (scope == "in" or persona == "superuser") else "404"
    return "allowed" if allowed else "403"


def outcome_of(response) -> str:
    location = urlsplit(response.get("Location", ""))
    if response.status_code == 302 and location.path == reverse("login") and "next=" in location.query:
        return "login"
    if response.status_code == 401 and response.get("WWW-Authenticate", "").startswith("Bearer"):
        return "login"  # the REST API's "authenticate first"
    if (response.status_code == 403 and response.get("Content-Type", "").startswith("application/json")
            and not response.json()["detail"].startswith("You need a role")):
        # The API let the caller through to the object, whose own rule refused the action (e.g. closing
        # someone else's request): what a page shows as an error message after a redirect.
        return "allowed"
    if response.status_code in (403, 404, 405):
        return str(response.status_code)
    assert response.status_code < 500, response.status_code
    return "allowed"


def test_every_url_declares_who_may_open_it():
    assert routes_without_rules() == []
    assert len(PORTAL_ROUTES) >= 10


def test_a_url_without_a_declaration_is_caught():
    def declared(request):
        raise AssertionError

    def undeclared(request):
        raise AssertionError

    patterns = [path("declared/", public(declared)), path("forgotten/", undeclared)]
    assert routes_without_rules(patterns) == ["forgotten/"]


def test_every_object_page_has_a_factory():
    missing = {r.rule.object_model for r, _ in PORTAL_ROUTES if r.rule.on_object} - set(OBJECT_FACTORIES)
    assert not missing, f"add these models to OBJECT_FACTORIES: {missing}"


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "pattern", "persona", "scope"), list(cases()))
def test_the_matrix(client, persona_mappings, breakglass_admin, route, pattern, persona, scope):
    kwargs = {}
    for name in kwarg_names(pattern):
        if name == "pk" and route.rule.on_object:
            kwargs[name] = OBJECT_FACTORIES[route.rule.object_model](SCOPES[scope]).pk
        else:
            assert name in SAMPLE_KWARGS, f"add a sample value for <{name}> ({route.pattern})"
            kwargs[name] = SAMPLE_KWARGS[name]
    assert route.view_name, f"name the URL {route.pattern}"
    url = reverse(route.view_name, kwargs=kwargs)
    if persona == "superuser":
        client.force_login(breakglass_admin)
    elif persona != "anonymous":
        client.force_login(make_persona(persona))

    query = SAMPLE_QUERY.get(route.view_name, {})
    expected = expected_outcome(route.rule, persona, scope)
    if route.rule.audience is Audience.PUBLIC:
        # Open to all: reading it never sends anyone to sign in or refuses them (POST may start a sign-in).
        assert outcome_of(client.get(url, query)) in {"allowed", "405"}, f"GET {url} as {persona}"
        return
    # A view answers at least one of GET and POST as the matrix says; the other may be refused as a method
    # (405 before the permission check tells nothing either).
    outcomes = {"GET": outcome_of(client.get(url, query)), "POST": outcome_of(client.post(url, {}))}
    assert expected in outcomes.values(), f"{url} as {persona}: expected {expected}, got {outcomes}"
    assert set(outcomes.values()) <= {expected, "405"}, f"{url} as {persona}: expected {expected}, got {outcomes}"


ADMIN_URLS = ["admin:index", "admin:accounts_rolemapping_changelist", "admin:accounts_user_changelist"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ADMIN_URLS)
@pytest.mark.parametrize("persona", ["anonymous", "policy_admin", "superuser"])
def test_the_django_admin_is_for_break_glass_staff_only(client, persona_mappings, breakglass_admin, name, persona):
    if persona == "superuser":
        client.force_login(breakglass_admin)
    elif persona != "anonymous":
        client.force_login(make_persona(persona))
    response = client.get(reverse(name))
    if persona == "superuser":
        assert response.status_code == 200
    else:
        assert response.status_code == 302
        sign_in_pages = {reverse("admin:login"), reverse("login")} if persona == "anonymous" else {
            reverse("admin:login")}
        assert urlsplit(response["Location"]).path in sign_in_pages


OWNED_ROUTES = [(r, p) for r, p in PORTAL_ROUTES if r.rule.owner_field]


def test_some_object_pages_let_their_owner_through():
    assert {r.view_name for r, _ in OWNED_ROUTES} >= {"policies:request_detail", "policies:request_close",
                                                       "api:request", "api:request_close"}


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "pattern"), [pytest.param(r, p, id=r.view_name) for r, p in OWNED_ROUTES])
def test_an_owner_without_the_action_gets_through_to_their_own_object(client, persona_mappings, route, pattern):
    """A user without any role (``outsider``) reaches an object page when the object is theirs (``owner_field``),
    out of every scope too; the same object of someone else stays a 404 (``test_the_matrix``)."""
    owner = make_persona("outsider")
    obj = OBJECT_FACTORIES[route.rule.object_model](SCOPES["out"])
    type(obj)._default_manager.filter(pk=obj.pk).update(**{f"{route.rule.owner_field}_id": owner.pk})
    url = reverse(route.view_name, kwargs={"pk": obj.pk})
    client.force_login(owner)
    outcomes = {"GET": outcome_of(client.get(url)), "POST": outcome_of(client.post(url, {}))}
    assert "allowed" in outcomes.values() and set(outcomes.values()) <= {"allowed", "405"}, f"{url}: {outcomes}"


# Every portal page answers GET and HEAD and, where it has a form or a button, POST; anything else is a 405 (the
# portal's 405 page in a browser), never the page read or its form handled as if it were a GET or a POST. Left out:
# the API, whose views list their methods themselves (``tests/api``), and the Django admin (staff only, Django's own
# views).
METHOD_EXEMPT_NAMESPACES = {"api": "the REST API's views declare their own methods", "admin": "Django's own admin"}
# Portal URLs that legitimately take one of the methods below, with why (none does yet).
TAKES_OTHER_METHODS: dict[str, str] = {}
OTHER_METHODS = ("PUT", "DELETE", "PATCH")
METHOD_ROUTES = [(r, p) for r, p in ALL_ROUTES if (r.namespace or "").split(":")[0] not in METHOD_EXEMPT_NAMESPACES
                 and r.view_name not in TAKES_OTHER_METHODS]
# Pages whose GET must not run for a HEAD (which HTTP would otherwise have answer as the GET, its body dropped): they
# refuse HEAD with a 405 whose ``Allow`` does not name it, with why.
REFUSES_HEAD = {
    "audit:export": "the export is audited: a HEAD would record an export of rows nobody received",
    "openid_connect_login": "allauth takes any method but GET as the POST that starts a sign-in (a state kept in "
                            "the session, Entra ID's discovery document read, a redirect to Entra ID)",
    "openid_connect_callback": "it redeems the sign-in's one-time state and code: a HEAD would spend them",
    "revalidate": "it starts a silent sign-in (a state kept in the session, Entra ID's discovery document read)",
}


def test_the_method_check_walks_every_portal_page():
    names = {r.view_name for r, _ in METHOD_ROUTES}
    assert {"dashboard", "login", "policies:policy_edit", "policies:inventory", "accounts:rolemapping_list",
            "audit:search", "notifications:webhook_detail", "api_tokens", "healthz"} <= names
    assert not names & {r.view_name for r, _ in ALL_ROUTES if r.namespace == "api"}
    assert set(TAKES_OTHER_METHODS) <= {r.view_name for r, _ in ALL_ROUTES}
    assert set(REFUSES_HEAD) <= names


def _signed_in_url(client, route: Route, pattern: URLPattern, user) -> str:
    """The page's URL, with its object in scope, for a user it lets through (``user``, break-glass staff, or the
    object's owner), now signed in."""
    kwargs = {}
    for name in kwarg_names(pattern):
        if name == "pk" and route.rule and route.rule.on_object:
            obj = OBJECT_FACTORIES[route.rule.object_model](SCOPES["in"])
            kwargs[name] = obj.pk
            if route.rule.audience is Audience.OWNER:
                user = getattr(obj, route.rule.owner_field)
        else:
            assert name in SAMPLE_KWARGS, f"add a sample value for <{name}> ({route.pattern})"
            kwargs[name] = SAMPLE_KWARGS[name]
    client.force_login(user)
    return reverse(route.view_name, kwargs=kwargs)


def _allowed(response) -> set[str]:
    return {name.strip() for name in response["Allow"].split(",")}


METHOD_PARAMS = [pytest.param(r, p, id=r.view_name or r.pattern) for r, p in METHOD_ROUTES]


@pytest.mark.django_db
@pytest.mark.parametrize("method", OTHER_METHODS)
@pytest.mark.parametrize(("route", "pattern"), METHOD_PARAMS)
def test_a_portal_page_refuses_methods_other_than_get_and_post(client, persona_mappings, breakglass_admin, route,
                                                                pattern, method):
    """Sent by someone the page lets through, with the object in scope: the refusal is the method's whatever order
    the view's decorators are in, and its ``Allow`` names HEAD wherever it names GET (but on ``REFUSES_HEAD``)."""
    url = _signed_in_url(client, route, pattern, breakglass_admin)
    response = client.generic(method, url, "", HTTP_ACCEPT="text/html")
    assert response.status_code == 405, f"{method} {url} answered {response.status_code}"
    allowed = _allowed(response)
    assert method not in allowed and allowed & {"GET", "POST"}, response["Allow"]
    if "GET" in allowed:
        assert ("HEAD" in allowed) is (route.view_name not in REFUSES_HEAD), f"{url}: Allow: {response['Allow']}"


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "pattern"), METHOD_PARAMS)
def test_a_portal_page_answers_head_as_its_get(client, persona_mappings, breakglass_admin, route, pattern):
    """HTTP has a page that answers GET answer HEAD with the same status and headers, without a body (uptime monitors
    and link checkers send HEAD): a HEAD runs the page's GET. A button's address (POST only) refuses both; a page of
    ``REFUSES_HEAD`` refuses HEAD only."""
    url = _signed_in_url(client, route, pattern, breakglass_admin)
    query = SAMPLE_QUERY.get(route.view_name, {})
    got = client.get(url, query, HTTP_ACCEPT="text/html")
    head = client.head(url, query, HTTP_ACCEPT="text/html")
    if got.status_code == 405 or route.view_name in REFUSES_HEAD:
        assert head.status_code == 405 and "HEAD" not in _allowed(head), f"HEAD {url}: {head.status_code}"
        assert ("GET" in _allowed(head)) is (got.status_code != 405), head["Allow"]
        return
    assert head.status_code == got.status_code, f"HEAD {url}: {head.status_code}, GET: {got.status_code}"
    assert head.content == b"", f"HEAD {url} has a body"
    assert head.get("Location") == got.get("Location") and head.get("Content-Type") == got.get("Content-Type"), url
