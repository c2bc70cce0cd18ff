"""The approvers' queue (``/approvals/``): exactly the requests this approver may decide, the first to expire first,
a page at a time by cursor (a decision taken meanwhile moves no row across pages), in the same few queries however
long the queue; a page link it did not give shows the first page, saying so."""
from __future__ import annotations

import base64
import html
import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services as account_services
from accounts.config import DEMO_TENANT_ID
from accounts.models import RoleMapping
from policies.access import approval_views, approvals
from policies.access.models import AccessRequest
from tests.plugins.personas import IN_SCOPE, OUT_OF_SCOPE
from tests.policies.access.factories import ask, pending_in_groups, rule

pytestmark = pytest.mark.django_db(transaction=True)
WEB_RG = f"{IN_SCOPE}/resourceGroups/rg-web-prod"
WEB_APPROVERS = "9c1d2e3f-0000-4000-8000-000000000902"


@pytest.fixture
def web_approver(persona_mappings):
    """Gina approves in ``rg-web-prod`` alone (through a group), where she may request access too."""
    for role in ("approver", "requester"):
        RoleMapping.objects.create(source_kind=RoleMapping.SourceKind.GROUP, source_value=WEB_APPROVERS, role=role,
                                   scope=WEB_RG, description=f"web {role}s")
    return account_services.user_sign_in_record(claims={
        "tid": DEMO_TENANT_ID, "oid": "8a0e7c31-0000-4000-8000-000000000090", "preferred_username":
        "gina@contoso.example", "name": "Gina Web Approver", "roles": [], "groups": [WEB_APPROVERS]})


def shown(client, **params) -> tuple[list[int], str]:
    """The request ids of one page of the queue, in order, and the page."""
    response = client.get(reverse("policies:approvals"), params)
    assert response.status_code == 200
    page = response.content.decode()
    return [int(pk) for pk in re.findall(r'<tr data-request="(\d+)"', page)], page


def link(page: str, name: str) -> str | None:
    """The URL of the page's ``name`` link (first, previous, next), or None."""
    found = re.search(rf'id="page-{name}"[^>]* href="([^"]+)"', page)
    return reverse("policies:approvals") + html.unescape(found.group(1)) if found else None


def walk(client, **params) -> list[list[int]]:
    """Every page of the queue from the first, following its Next links."""
    pages, response = [], client.get(reverse("policies:approvals"), params)
    while True:
        assert response.status_code == 200
        page = response.content.decode()
        pages.append([int(pk) for pk in re.findall(r'<tr data-request="(\d+)"', page)])
        if not link(page, "next"):
            return pages
        response = client.get(link(page, "next"))
        assert len(pages) < 20


def waiting_in_order(pks: list[int]) -> list[int]:
    """``pks`` the first to expire first (ties: the first asked)."""
    return list(AccessRequest.objects.filter(pk__in=pks).order_by("approval_expires_at", "id")
                .values_list("pk", flat=True))


def test_the_queue_shows_exactly_what_this_approver_may_decide_the_first_to_expire_first_across_pages(
        client, prod, requester, approver, web_approver, monkeypatch):
    monkeypatch.setattr(approval_views, "PER_PAGE", 3)
    rule(IN_SCOPE, "manual", approvals_required=2)
    decidable = [ask(requester, {vm: [22]}).pk for vm in ("web-02", "web-04", "web-01", "web-02", "web-04",
                                                           "web-01", "web-02")]
    decidable.append(ask(requester, {"web-02": [22], "web-04": [22]}).pk)  # two VMs, both in her scope
    elsewhere = ask(requester, {"db-01": [22]}).pk  # another resource group's
    spanning = ask(requester, {"web-02": [22], "db-01": [22]}).pk  # one VM outside her scope
    own = ask(web_approver, {"web-02": [22]}).pk  # hers: the product refuses self-approval
    decided = ask(requester, {"web-04": [22]})
    approvals.request_decide(actor=web_approver, request=decided, approve=True)  # 1 of 2: still waiting, not on her
    # The order is the expiry's, not the asking's; two that expire together keep the order they were asked in.
    soon = timezone.now() + timedelta(minutes=5)
    AccessRequest.objects.filter(pk__in=decidable[4:6]).update(approval_expires_at=soon)
    AccessRequest.objects.filter(pk=decidable[7]).update(approval_expires_at=soon - timedelta(minutes=1))

    client.force_login(web_approver)
    pages = walk(client)
    assert [pk for page in pages for pk in page] == waiting_in_order(decidable)
    assert [len(page) for page in pages] == [3, 3, 2]
    assert pages[0][:3] == [decidable[7], decidable[4], decidable[5]]
    first = client.get(reverse("policies:approvals")).content.decode()
    assert link(first, "previous") is None and link(first, "first") is None
    second = client.get(link(first, "next")).content.decode()
    assert link(second, "previous") and link(second, "next") and link(second, "first")
    assert shown(client)[0] == [int(pk) for pk in re.findall(r'<tr data-request="(\d+)"', client.get(
        link(second, "previous")).content.decode())]  # Previous leads back to the first page

    client.force_login(approver)  # the whole subscription's approver: every one of them waits for him
    everyone = [pk for page in walk(client) for pk in page]
    assert everyone == waiting_in_order([*decidable, elsewhere, spanning, own, decided.pk])


def test_a_page_number_of_an_old_link_shows_the_first_page(client, prod, requester, approver, monkeypatch):
    """The queue pages by cursor; a ``page`` number, from a link kept from before, is read as nothing."""
    monkeypatch.setattr(approval_views, "PER_PAGE", 2)
    rule(IN_SCOPE, "manual")
    waiting = waiting_in_order([ask(requester, {"web-02": [22]}).pk for _ in range(5)])
    client.force_login(approver)
    for page in ("abc", "0", "-3", "1.5", "", "3", "99", "9" * 30):
        ids, text = shown(client, page=page)
        assert ids == waiting[:2] and 'id="cursor-error"' not in text, page
        assert "page=" not in link(text, "next"), page


def ids_of(page: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-request="(\d+)"', page)]


def cursor_of(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_decision_taken_meanwhile_moves_no_request_across_pages(client, persona_mappings, approver):
    """With numbered pages, a request of page 1 decided while the approver read it shifted the first of page 2 onto
    page 1, unseen; the next page now starts after the last request shown, ties on the expiry broken by id."""
    waiting = pending_in_groups(f"{IN_SCOPE}/resourceGroups/rg-queue", [3, 2, 3])
    outside = pending_in_groups(f"{OUT_OF_SCOPE}/resourceGroups/rg-queue", [2, 2])  # never on his pages
    client.force_login(approver)
    before = walk(client, per_page="3")
    assert [pk for page in before for pk in page] == waiting_in_order([r.pk for r in waiting])
    assert not {pk for page in before for pk in page} & {r.pk for r in outside}
    first = client.get(reverse("policies:approvals"), {"per_page": "3"}).content.decode()
    AccessRequest.objects.filter(pk=ids_of(first)[0]).update(approval_state="approved")  # decided by another
    second = client.get(link(first, "next")).content.decode()
    assert ids_of(second) == before[1]
    third = client.get(link(second, "next")).content.decode()
    assert ids_of(third) == before[2] and link(third, "next") is None
    # Every request of the last page decided meanwhile: that page says so and leads to the first.
    AccessRequest.objects.filter(pk__in=before[2]).update(approval_state="approved")
    gone = client.get(link(second, "next")).content.decode()
    assert ids_of(gone) == [] and "decided or expired meanwhile" in gone and link(gone, "first")


@pytest.mark.parametrize("cursor", ["garbage", "%%", cursor_of("not json"), cursor_of(["approval_expires_at", "x", 1]),
                                    cursor_of(["approval_expires_at", "2030-01-01T00:00:00", 1]),
                                    cursor_of(["created_at", "2030-01-01T00:00:00+00:00", 1]),
                                    cursor_of(["approval_expires_at", "2030-01-01T00:00:00+00:00", 2**64])])
@pytest.mark.parametrize("key", ["after", "before"])
def test_a_page_link_it_did_not_give_shows_the_first_page_saying_so(client, persona_mappings, approver, cursor, key):
    waiting = pending_in_groups(f"{IN_SCOPE}/resourceGroups/rg-queue", [3])
    client.force_login(approver)
    response = client.get(reverse("policies:approvals"), {key: cursor, "per_page": "2"})
    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="cursor-error"' in text and "here is the first page" in text
    assert ids_of(text) == waiting_in_order([r.pk for r in waiting])[:2] and "per_page=2" in link(text, "next")
    assert link(text, "previous") is None and cursor not in text


def test_a_short_queue_shows_no_page_links_and_an_empty_one_says_so(client, prod, requester, approver):
    rule(IN_SCOPE, "manual")
    client.force_login(approver)
    assert 'id="queue-empty"' in shown(client)[1] and 'id="queue-empty"' in shown(client, page=4)[1]
    ask(requester, {"web-02": [22]})
    ids, page = shown(client)
    assert len(ids) == 1 and 'class="paginator"' not in page


def test_a_page_of_the_queue_reads_the_same_queries_however_long_the_queue(client, prod, requester, approver,
                                                                           web_approver):
    """A full page of ``PER_PAGE`` with more to come, requests of several requesters on one and two VMs with
    decisions given, reads what a page of two does."""
    rule(IN_SCOPE, "manual", approvals_required=2)
    client.force_login(approver)

    def page_queries() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            ids, _ = shown(client)
        return len(queries), len(ids)

    def add(n: int) -> None:
        for i in range(n):
            asker = web_approver if i % 3 == 0 else requester
            request = ask(asker, {"web-02": [22], "web-win-01": [3389, 5985]} if i % 2 else {"web-01": [22]})
            if i % 4 == 0 and asker != web_approver:
                approvals.request_decide(actor=web_approver, request=request, approve=True)

    add(2)
    page_queries()  # the first saves the session
    few, rows = page_queries()
    assert rows == 2
    add(approval_views.PER_PAGE + 3)
    many, rows = page_queries()
    assert rows == approval_views.PER_PAGE
    assert many == few, (few, many)


def test_the_queue_history_asks_once_per_request_whether_it_opened_in_the_index_of_opened_ports(requester):
    """Counting each requester's last 30 days grew with their requests: whether each opened was asked twice per
    request (grouped by it too) and read each of its ports; now once, in an index of the ports that opened."""
    from policies.access import selectors

    with CaptureQueriesContext(connection) as queries:
        selectors.requester_history([requester.pk])
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {queries.captured_queries[-1]['sql']}")
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            assert plan.count("CORRELATED SCALAR SUBQUERY") == 1 and "acc_port_opened" in plan, plan
        else:
            cursor.execute(f"EXPLAIN {queries.captured_queries[-1]['sql']}")
            plan = "\n".join(str(row[0]) for row in cursor.fetchall())
            assert plan.count("SubPlan") == 1, plan
