"""The requester's pages laid out in headless chromium: the request form's fields in one column beside their
labels, and, on a phone, pages that do not scroll sideways."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from policies.access.models import AccessRequest
from tests.plugins.personas import IN_SCOPE, sign_in_with_entra
from tests.policies.access.factories import ask, open_all, vm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIELDS = {"#label-ports": "#id_ports", "#label-source": "#id_source_kind", "label[for=id_duration]": "#id_duration",
          "label[for=id_start_at]": "#id_start_at", "label[for=id_justification]": "#id_justification"}


@pytest.fixture
def portal(live_server, entra_settings, prod, persona_mappings):
    return live_server.url


def boxes(page, selectors) -> dict[str, dict]:
    found = {selector: page.locator(selector).bounding_box() for selector in selectors}
    assert all(found.values()), found
    return found


def test_the_request_forms_fields_start_in_one_column_beside_their_labels(portal, entra_page):
    page = entra_page
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in_with_entra(page, portal, "alice@contoso.example")
    page.goto(f"{portal}/requests/new/?vm={vm('jump-02').pk}")
    labels, fields = boxes(page, FIELDS), boxes(page, FIELDS.values())
    assert len({round(labels[label]["x"]) for label in FIELDS}) == 1, labels
    assert len({round(fields[field]["x"]) for field in FIELDS.values()}) == 1, fields
    for label, field in FIELDS.items():  # beside its label, on its line
        assert fields[field]["x"] >= labels[label]["x"] + labels[label]["width"], (label, labels[label], fields[field])
        assert abs(fields[field]["y"] - labels[label]["y"]) < 12, (label, labels[label], fields[field])


def test_on_a_phone_the_request_form_stacks_each_label_above_its_field(portal, entra_page):
    page = entra_page
    page.set_viewport_size({"width": 400, "height": 800})
    sign_in_with_entra(page, portal, "alice@contoso.example")
    page.goto(f"{portal}/requests/new/?vm={vm('jump-02').pk}")
    labels, fields = boxes(page, FIELDS), boxes(page, FIELDS.values())
    for label, field in FIELDS.items():
        assert fields[field]["y"] >= labels[label]["y"] + labels[label]["height"] - 1, (label, labels, fields)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 400


def test_on_a_phone_the_requests_list_a_request_and_the_connect_page_do_not_scroll_sideways(
        portal, entra_page, requester):
    page = entra_page
    page.set_viewport_size({"width": 400, "height": 800})
    sign_in_with_entra(page, portal, "alice@contoso.example")
    request = AccessRequest.objects.get(pk=ask(requester, {"jump-02": [22]}).pk)
    open_all(request)
    for path in ("/requests/", f"/requests/{request.pk}/", f"/inventory/vm/{vm('jump-02').pk}/connect/"):
        page.goto(f"{portal}{path}")
        expect(page.locator("#content")).to_be_visible()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 400, path
    page.goto(f"{portal}/requests/{request.pk}/")
    copy = page.locator("tr[data-port='22'] button.copy")
    copy.scroll_into_view_if_needed()
    expect(copy).to_be_in_viewport()  # the port's card (a phone's ports table) has its Copy button in reach
    caption = page.locator(".request-vm h2").bounding_box()  # the VM's name stays in view: it does not scroll away
    assert caption["x"] >= 0 and caption["x"] + caption["width"] <= 400, caption


def test_the_connect_pages_form_lines_up_with_its_text_and_its_buttons_are_button_sized(portal, entra_page):
    """The Justification label sat at the module's edge, left of the text above it, and "Choose ports, source and
    time range…" had a text box's padding (the admin's "form .button")."""
    page = entra_page
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in_with_entra(page, portal, "alice@contoso.example")
    page.goto(f"{portal}/inventory/vm/{vm('jump-02').pk}/connect/")
    text = page.locator("#connect-ports").evaluate("e => e.parentElement.getBoundingClientRect().left + "
                                                   "parseFloat(getComputedStyle(e.parentElement).paddingLeft)")
    label = page.locator("label[for=connect-justification]").bounding_box()
    assert abs(label["x"] - text) < 1, (label, text)
    for button in ("#connect-request", "#connect-full-form"):
        expect(page.locator(button)).to_have_css("padding-top", "10px")


LONG_JUSTIFICATION = "Incident INC-" + "X" * 300 + " <b>not bold</b>"


@pytest.mark.parametrize("width", [1280, 390])
def test_a_long_justification_and_a_vms_tables_do_not_widen_the_page(portal, entra_page, requester, prod, width):
    """A justification without spaces wraps on the request's page and the VM's (Azure's record of it, after a sync);
    the VM's tables (cards on a phone) and its JIT settings form fit a phone."""
    from tests.policies.factories import sync

    request = ask(requester, {"web-02": [22]}, justification=LONG_JUSTIFICATION)
    open_all(request)
    sync(prod)
    page = entra_page
    page.set_viewport_size({"width": width, "height": 900})
    sign_in_with_entra(page, portal, "bob@contoso.example")
    web_02 = vm("web-02").pk
    for path in (f"/requests/{request.pk}/", f"/inventory/vm/{web_02}/", f"/inventory/vm/{web_02}/jit/"):
        page.goto(f"{portal}{path}")
        expect(page.locator("#content")).to_be_visible()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width, path
    page.goto(f"{portal}/inventory/vm/{web_02}/")
    expect(page.locator("#recent-requests td.free-text").first).to_contain_text("<b>not bold</b>")


def test_on_a_phone_long_vm_and_user_names_do_not_widen_the_dashboard_a_request_or_my_access(
        portal, entra_page, requester):
    """A 48-character VM name in My open access, a long user principal name on the request's page, and My access's
    roles table (scopes, mapping descriptions) stay within a phone's width, tables shown as cards."""
    from policies.access.models import AccessRequestVm

    request = ask(requester, {"web-02": [22]})
    open_all(request)
    AccessRequestVm.objects.filter(request=request).update(vm_name="vm-" + "averyveryverylongname" * 2 + "-x1")
    AccessRequest.objects.filter(pk=request.pk).update(
        requester_name="alice.with.an.extraordinarily.long.user.principal.name@contoso-subsidiary.example")
    page = entra_page
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in_with_entra(page, portal, "alice@contoso.example")
    for path in ("/", f"/requests/{request.pk}/", "/accounts/me/"):
        page.goto(f"{portal}{path}")
        expect(page.locator("#content")).to_be_visible()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, path


def test_on_a_phone_the_subscriptions_and_access_rules_settings_do_not_scroll_sideways(portal, entra_page, prod):
    """The Settings lists of a security admin (subscriptions with their ids and sync, access rules with their scope
    and nine columns) are cards on a phone; the page itself was once 600-900 px wide."""
    from tests.policies.access.factories import rule

    rule(IN_SCOPE, "deny", name="Never open RDP to the internet", ports=[3389], source_prefixes=["*"])
    rule(f"{IN_SCOPE}/resourceGroups/rg-data-prod", approvals_required=2, justification_pattern=r"[A-Z]+-[0-9]+")
    page = entra_page
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in_with_entra(page, portal, "bob@contoso.example")
    for path, table in (("/settings/subscriptions/", "#result_list"), ("/settings/access-rules/", "#rule-table")):
        page.goto(f"{portal}{path}")
        expect(page.locator(table)).to_be_visible()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, path


def test_at_1280_px_every_role_mapping_column_shows_beside_the_filters(portal, entra_page, persona_mappings):
    """A group's claim value (its object id) kept on one line pushed the table past its box: Updated was cut off and
    Changed by out of view."""
    from accounts.models import RoleMapping, User

    page = entra_page
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in_with_entra(page, portal, "bob@contoso.example")
    RoleMapping.objects.create(  # a tenant id too, and who changed it last
        source_kind=RoleMapping.SourceKind.GROUP, source_value="1b2c3d4e-0000-4000-8000-000000000007",
        tenant_id="72f988bf-86f1-41af-91ab-2d7cd011db47", role="auditor", scope=IN_SCOPE,
        description="Auditors of another tenant", updated_by=User.objects.get(email="bob@contoso.example"))
    page.goto(f"{portal}/settings/role-mappings/")
    box = page.locator("#changelist .table-container")
    expect(box.locator("#result_list")).to_be_visible()
    assert box.evaluate("e => e.scrollWidth <= e.clientWidth"), "the table is wider than its box"
    right = box.evaluate("e => e.getBoundingClientRect().right")
    headers = page.locator("#result_list thead th")
    expect(headers).to_have_count(8)
    for header in headers.all():
        assert header.evaluate("e => e.getBoundingClientRect().right") <= right + 1, header.inner_text()


def test_on_a_phone_the_approvals_queue_fits_the_page(portal, entra_page, requester):
    """The queue's nine columns (VMs and ports, source, justification, history, expiry) made an approver's page
    about 860 px wide on a phone; each request is now a card (``table.stacked``) and the page does not scroll
    sideways."""
    from tests.policies.access.factories import rule

    rule(f"{IN_SCOPE}/resourceGroups/rg-web-prod", approvals_required=2)
    request = ask(requester, {"web-02": [22]}, justification="CHG-1234 check the replication lag")
    page = entra_page
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in_with_entra(page, portal, "dave@contoso.example")
    page.goto(f"{portal}/approvals/")
    expect(page.locator(f"tr[data-request='{request.pk}']")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    expires = page.locator(f"tr[data-request='{request.pk}'] td").last
    expires.scroll_into_view_if_needed()
    expect(expires).to_be_in_viewport()  # within the card, in reach


def test_the_request_pages_close_now_extend_and_ports_table_line_up_with_their_modules(portal, entra_page, requester):
    """Close now sat on the Extend caption bar, Extend's label began at the module's edge (left of its help and of
    the caption's text) and the ports table stopped short of its VM's caption bar."""
    request = ask(requester, {"jump-02": [22]})
    open_all(request)
    page = entra_page
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in_with_entra(page, portal, "alice@contoso.example")
    page.goto(f"{portal}/requests/{request.pk}/")
    close, caption = page.locator("#close-now").bounding_box(), page.locator("#extend-form h2").bounding_box()
    assert caption["y"] - (close["y"] + close["height"]) >= 16, (close, caption)
    label = page.locator("label[for=id_duration]").bounding_box()
    help_text = page.locator("#extend-help").evaluate("e => e.getBoundingClientRect().left + "
                                                      "parseFloat(getComputedStyle(e).paddingLeft)")
    assert abs(label["x"] - help_text) < 1 and label["x"] > caption["x"], (label, help_text, caption)
    table, bar = page.locator(".request-ports").bounding_box(), page.locator(".request-vm h2").bounding_box()
    assert abs(table["width"] - bar["width"]) < 1, (table, bar)
