"""Subscription pages under Settings: register, see the Defender check, sync now with progress."""
from __future__ import annotations

import io
import re

import pytest
from django.urls import reverse

from policies.models import Subscription, SyncRun
from tests.policies.factories import DEV, PROD, TENANT, make_subscription, register, sync


@pytest.mark.django_db
def test_an_admin_registers_a_subscription_and_a_sync_is_queued(client, policy_admin,
                                                                  django_capture_on_commit_callbacks):
    client.force_login(policy_admin)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(reverse("policies:subscription_add"), {
            "display_name": "Contoso Production", "tenant_id": TENANT, "subscription_id": PROD.upper(),
            "credential_ref": "demo", "arm_endpoint": "https://127.0.0.1:8443",
            "authority": "https://127.0.0.1:8443", "ca_bundle": "", "enabled": "on"})
    assert response.status_code == 302
    subscription = Subscription.objects.get()
    assert subscription.subscription_id == PROD and subscription.credential_ref == "demo"
    assert SyncRun.objects.filter(subscription=subscription, state="queued").count() == 1 and len(queued) == 1


@pytest.mark.django_db
def test_registration_refuses_a_subscription_outside_the_admins_scope(client, policy_admin):
    client.force_login(policy_admin)
    response = client.post(reverse("policies:subscription_add"), {
        "display_name": "Dev", "tenant_id": TENANT, "subscription_id": DEV, "credential_ref": "demo",
        "arm_endpoint": "https://127.0.0.1:8443", "authority": "https://127.0.0.1:8443", "enabled": "on"})
    assert response.status_code == 400
    assert "Only admins at the subscription" in response.content.decode()
    assert not Subscription.objects.exists()


@pytest.mark.django_db
def test_registration_does_not_tell_whether_another_scopes_subscription_is_registered(client, policy_admin,
                                                                                      breakglass_admin):
    """Registering a subscription outside the admin's scope is refused the same way whether or not it is registered
    already: "already registered" would tell a Production admin that the Dev/Test subscription is in the portal."""
    client.force_login(policy_admin)
    data = {"display_name": "Dev", "tenant_id": TENANT, "subscription_id": DEV, "credential_ref": "demo",
            "arm_endpoint": "https://127.0.0.1:8443", "authority": "https://127.0.0.1:8443", "enabled": "on"}
    unregistered = client.post(reverse("policies:subscription_add"), data).content.decode()
    make_subscription(f"/subscriptions/{DEV}")
    registered = client.post(reverse("policies:subscription_add"), data)
    page = registered.content.decode()
    assert registered.status_code == 400 and "Only admins at the subscription" in page
    assert "already" not in page.lower() and "already" not in unregistered.lower()
    client.force_login(breakglass_admin)
    again = client.post(reverse("policies:subscription_add"), data)  # whoever may manage it is told
    assert again.status_code == 400 and "already registered" in again.content.decode()


@pytest.mark.django_db
def test_an_invalid_registration_or_edit_answers_400_and_stores_nothing(client, policy_admin):
    client.force_login(policy_admin)
    data = {"display_name": "Prod", "tenant_id": "not-a-guid", "subscription_id": PROD, "credential_ref": "demo",
            "arm_endpoint": "https://127.0.0.1:8443", "authority": "https://127.0.0.1:8443", "enabled": "on"}
    response = client.post(reverse("policies:subscription_add"), data)
    assert response.status_code == 400 and "Enter a GUID" in response.content.decode()
    assert not Subscription.objects.exists()
    subscription = make_subscription(f"/subscriptions/{PROD}")
    response = client.post(reverse("policies:subscription_edit", args=[subscription.pk]),
                           {**data, "tenant_id": TENANT, "display_name": "Renamed", "arm_endpoint": "http://127.0.0.1:8443"})
    assert response.status_code == 400 and "Enter an https:// URL" in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.display_name == "matrix"
    # The refused name is only in its box: the page's title and crumbs still name the subscription as stored.
    page = response.content.decode()
    assert "<title>matrix |" in page and "&rsaquo; matrix" in page and 'value="Renamed"' in page
    assert "Renamed |" not in page and "&rsaquo; Renamed" not in page
    assert client.get(reverse("policies:subscription_edit", args=[subscription.pk])).status_code == 200


@pytest.mark.django_db
def test_registration_refuses_an_unknown_credential_reference_and_a_bad_guid(client, policy_admin):
    client.force_login(policy_admin)
    response = client.post(reverse("policies:subscription_add"), {
        "tenant_id": "not-a-guid", "subscription_id": PROD, "credential_ref": "nope",
        "arm_endpoint": "https://127.0.0.1:8443", "authority": "https://127.0.0.1:8443"})
    page = response.content.decode()
    assert "Enter a GUID" in page and "Select a valid choice" in page
    assert not Subscription.objects.exists()


@pytest.mark.django_db
def test_the_pages_show_the_defender_check_and_the_sync_progress(client, breakglass_admin, fresh_emulator):
    dev = register(fresh_emulator, DEV, "Contoso Dev/Test")
    sync(dev)
    client.force_login(breakglass_admin)
    listing = client.get(reverse("policies:subscriptions")).content.decode()
    assert "Missing: enable Defender for Servers Plan 2" in listing
    inventory = client.get(reverse("policies:inventory"), {"tab": "unsupported"}).content.decode()
    assert "JIT unavailable on Contoso Dev/Test" in inventory
    assert "enable Microsoft Defender for Servers Plan 2 on subscription Contoso Dev/Test" in inventory
    SyncRun.objects.create(subscription=dev, state=SyncRun.State.RUNNING, phase="network interfaces", vms_seen=8)
    status = client.get(reverse("policies:sync_status")).content.decode()
    assert 'hx-trigger="every 2s"' in status and "network interfaces" in status and "8 VMs" in status


@pytest.mark.django_db
def test_sync_now_queues_a_sync_of_the_admins_subscriptions(client, policy_admin, fresh_emulator,
                                                           django_capture_on_commit_callbacks):
    register(fresh_emulator, PROD, "Production")
    register(fresh_emulator, DEV, "Dev/Test")
    client.force_login(policy_admin)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        client.post(reverse("policies:sync_now"))
    assert list(SyncRun.objects.values_list("subscription__subscription_id", flat=True)) == [PROD]
    assert len(queued) == 1


@pytest.mark.django_db
def test_seed_demo_queues_the_inventory_syncs_and_the_activity_log_copy(settings, django_capture_on_commit_callbacks):
    from django.core.management import call_command

    settings.DEBUG = True
    with django_capture_on_commit_callbacks(execute=False) as queued:
        call_command("seed_demo", stdout=io.StringIO())
    names = {getattr(callback, "__qualname__", "") for callback in queued}
    assert "_copy_activity_log" in names and Subscription.objects.count() == 2


@pytest.mark.django_db
def test_seed_demo_registers_the_subscriptions_at_the_configured_emulator(settings,
                                                                          django_capture_on_commit_callbacks):
    from django.core.management import call_command

    settings.DEBUG = True
    settings.DEMO_EMULATOR_URL = "https://127.0.0.1:9443"  # EMULATOR_PORT=9443, as the Procfile starts it
    with django_capture_on_commit_callbacks(execute=False):
        call_command("seed_demo", stdout=io.StringIO())
    assert {(s.arm_endpoint, s.authority) for s in Subscription.objects.all()} == {
        ("https://127.0.0.1:9443", "https://127.0.0.1:9443")}


@pytest.mark.django_db
def test_the_demo_seed_registers_both_demo_subscriptions_against_the_local_emulator(
        django_capture_on_commit_callbacks):
    from policies import demo

    with django_capture_on_commit_callbacks(execute=False) as queued:
        demo.seed()
        demo.seed()  # idempotent
    subscriptions = {s.subscription_id: s for s in Subscription.objects.all()}
    assert set(subscriptions) == {PROD, DEV}
    assert {s.arm_endpoint for s in subscriptions.values()} == {"https://127.0.0.1:8443"}
    assert {s.credential_ref for s in subscriptions.values()} == {"demo"}
    assert all(s.ca_bundle.endswith("var/emulator/ca.pem") for s in subscriptions.values())
    assert SyncRun.objects.count() == 2 and len(queued) == 2


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["arm_endpoint", "authority"])
def test_registration_refuses_a_plain_http_endpoint_the_sdk_would_not_send_tokens_to(client, policy_admin, field):
    client.force_login(policy_admin)
    data = {"display_name": "Prod", "tenant_id": TENANT, "subscription_id": PROD, "credential_ref": "demo",
            "arm_endpoint": "https://127.0.0.1:8443", "authority": "https://127.0.0.1:8443", "enabled": "on",
            field: "http://127.0.0.1:8443"}
    response = client.post(reverse("policies:subscription_add"), data)
    assert "Enter an https:// URL: Azure SDKs send tokens over TLS only." in response.content.decode()
    assert not Subscription.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["https://evil.example/phish", "//evil.example/", "/\\evil.example"])
def test_sync_now_never_redirects_off_the_portal(client, policy_admin, target):
    client.force_login(policy_admin)
    response = client.post(reverse("policies:sync_now"), {"next": target})
    assert response.status_code == 302 and response["Location"] == reverse("policies:inventory")


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["<script>", "-1", "logout", "policies:requests", "evil.example", "é"])
def test_sync_now_returns_to_the_inventory_when_next_is_not_a_path(client, policy_admin, target):
    """A ``next`` that is no path (a word, a URL name, a bare host) is not a page to return to: not a 500 (Django's
    ``redirect`` takes a word for a URL name) nor another view's URL."""
    client.force_login(policy_admin)
    response = client.post(reverse("policies:sync_now"), {"next": target})
    assert response.status_code == 302 and response["Location"] == reverse("policies:inventory")


@pytest.mark.django_db
def test_sync_now_returns_to_the_inventory_page_it_came_from(client, policy_admin):
    client.force_login(policy_admin)
    back = reverse("policies:inventory") + "?tab=not_configured"
    assert client.post(reverse("policies:sync_now"), {"next": back})["Location"] == back


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["arm_endpoint", "authority"])
@pytest.mark.parametrize("url", ["https://collector.example/", "https://management.azure.com@collector.example/",
                                 "https://127.0.0.1.collector.example/"])
def test_an_admin_cannot_point_a_subscription_at_a_host_outside_azure_and_the_allowed_ones(
        client, policy_admin, field, url):
    """The portal's credential secret goes to the authority and its tokens to ARM: an admin who may edit a
    subscription must not be able to send them to a host of their choosing."""
    client.force_login(policy_admin)
    subscription = make_subscription(f"/subscriptions/{PROD}")
    data = {"display_name": "Prod", "tenant_id": TENANT, "subscription_id": PROD, "credential_ref": "demo",
            "arm_endpoint": "https://management.azure.com", "authority": "https://login.microsoftonline.com",
            "enabled": "on", field: url, "basis": shown_basis(client, subscription)}
    response = client.post(reverse("policies:subscription_edit", args=[subscription.pk]), data)
    assert response.status_code == 400
    assert "is not an Azure cloud endpoint" in response.content.decode()
    subscription.refresh_from_db()
    assert "collector" not in subscription.arm_endpoint + subscription.authority
    sovereign = {**data, field: "https://management.usgovcloudapi.net" if field == "arm_endpoint"
                 else "https://login.microsoftonline.us"}
    assert client.post(reverse("policies:subscription_edit", args=[subscription.pk]), sovereign).status_code == 302


@pytest.mark.django_db
def test_a_subscription_whose_endpoint_is_no_longer_allowed_fails_its_sync_without_calling_it(
        fresh_emulator, settings):
    from policies import services

    subscription = register(fresh_emulator, PROD, "Production")
    settings.CLOUD_ENDPOINT_HOSTS = ["localhost", "127.0.0.1:1"]  # not the emulator's host and port
    before = fresh_emulator.control("GET", "calls").json()["last"]
    run = SyncRun.objects.create(subscription=subscription)
    assert services.sync_run(run_id=run.pk).state == SyncRun.State.FAILED
    run.refresh_from_db()
    assert "is not an Azure cloud endpoint" in run.error and "CLOUD_ENDPOINT_HOSTS" in run.error
    assert fresh_emulator.control("GET", "calls").json()["last"] == before  # nothing was sent to it
    settings.CLOUD_ENDPOINT_HOSTS = [f"127.0.0.1:{fresh_emulator.url.rsplit(':', 1)[1]}"]
    run = SyncRun.objects.create(subscription=subscription)
    assert services.sync_run(run_id=run.pk).state == SyncRun.State.SUCCEEDED  # host:port entries count


@pytest.mark.django_db
def test_a_subscriptions_page_polls_the_sync_of_that_subscription_only(client, breakglass_admin, fresh_emulator):
    prod = register(fresh_emulator, PROD, "Contoso Production")
    dev = register(fresh_emulator, DEV, "Contoso Dev/Test")
    for subscription in (prod, dev):
        SyncRun.objects.create(subscription=subscription, state=SyncRun.State.RUNNING, phase="virtual machines")
    client.force_login(breakglass_admin)
    page = client.get(reverse("policies:subscription_edit", args=[prod.pk])).content.decode()
    poll = f'{reverse("policies:sync_status")}?subscription={prod.pk}'
    assert f'hx-get="{poll}"' in page and "Contoso Dev/Test" not in page
    status = client.get(poll).content.decode()
    assert "Contoso Production: Running" in status and "Contoso Dev/Test" not in status
    assert f'hx-get="{poll}"' in status  # the next poll asks for the same one
    everything = client.get(reverse("policies:sync_status"), {"subscription": "x"}).content.decode()
    assert "Contoso Production" in everything and "Contoso Dev/Test" in everything


@pytest.mark.django_db
def test_a_resource_group_admin_is_not_told_that_no_subscription_is_registered(client, policy_admin):
    from tests.audit.factories import user_with_role

    make_subscription(f"/subscriptions/{PROD}")
    client.force_login(user_with_role("gina@contoso.example", "policy_admin",
                                      f"/subscriptions/{PROD}/resourceGroups/rg-web-prod"))
    page = client.get(reverse("policies:subscriptions")).content.decode()
    assert "No subscriptions registered yet." not in page  # Production is registered: it is not hers to manage
    assert "No subscription you administer as a whole is registered." in page
    Subscription.objects.all().delete()
    client.force_login(policy_admin)  # at the whole of Production: a first subscription is theirs to register
    assert "No subscriptions registered yet." in client.get(reverse("policies:subscriptions")).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(("ca_bundle", "message"), [
    ("missing.pem", "No file is at this path on the portal&#x27;s server."),
    ("relative/ca.pem", "Enter the absolute path of a PEM file"),
    ("", "This path is not a regular file"),  # the folder itself
    ("not-pem.pem", "This file holds no PEM certificate"),
    ("bad-certificate.pem", "This file holds no PEM certificate"),
])
def test_registration_refuses_a_ca_bundle_that_is_no_readable_pem_file_of_certificates(
        client, policy_admin, tmp_path, ca_bundle, message):
    (tmp_path / "not-pem.pem").write_text("not a certificate\n")
    (tmp_path / "bad-certificate.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    client.force_login(policy_admin)
    data = {"display_name": "Prod", "tenant_id": TENANT, "subscription_id": PROD, "credential_ref": "demo",
            "arm_endpoint": "https://127.0.0.1:8443", "authority": "https://127.0.0.1:8443", "enabled": "on",
            "ca_bundle": ca_bundle if ca_bundle.startswith("relative") else str(tmp_path / ca_bundle)}
    response = client.post(reverse("policies:subscription_add"), data)
    assert response.status_code == 400 and message in response.content.decode()
    assert not Subscription.objects.exists()


@pytest.mark.django_db
def test_a_ca_bundle_of_pem_certificates_is_saved_without_the_spaces_around_it(client, policy_admin, tmp_path):
    import trustme

    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    subscription = make_subscription(f"/subscriptions/{PROD}")
    client.force_login(policy_admin)
    data = {"display_name": "Prod", "tenant_id": TENANT, "subscription_id": PROD, "credential_ref": "demo",
            "arm_endpoint": "https://127.0.0.1:8443", "authority": "https://127.0.0.1:8443", "enabled": "on",
            "ca_bundle": f"  {path}  ", "basis": shown_basis(client, subscription)}
    response = client.post(reverse("policies:subscription_edit", args=[subscription.pk]), data)
    assert response.status_code == 302, response.content.decode()
    subscription.refresh_from_db()
    assert subscription.ca_bundle == str(path)


@pytest.mark.django_db
def test_registering_editing_and_syncing_a_subscription_record_the_clients_address(client, policy_admin, settings):
    from audit.models import AuditEvent

    settings.ACCESS_TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxied = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    client.force_login(policy_admin)
    data = {"display_name": "Prod", "tenant_id": TENANT, "subscription_id": PROD, "credential_ref": "demo",
            "arm_endpoint": "https://127.0.0.1:8443", "authority": "https://127.0.0.1:8443", "enabled": "on"}
    assert client.post(reverse("policies:subscription_add"), data, **proxied).status_code == 302
    subscription = Subscription.objects.get()
    assert client.post(reverse("policies:subscription_edit", args=[subscription.pk]),
                       {**data, "display_name": "Production", "basis": shown_basis(client, subscription)},
                       **proxied).status_code == 302
    SyncRun.objects.update(state=SyncRun.State.SUCCEEDED)  # the registration's sync is done: "Sync now" asks again
    assert client.post(reverse("policies:subscription_sync", args=[subscription.pk]), **proxied).status_code == 302
    SyncRun.objects.update(state=SyncRun.State.SUCCEEDED)
    assert client.post(reverse("policies:sync_now"), **proxied).status_code == 302
    rows = AuditEvent.objects.filter(action__startswith="subscription.")
    assert list(rows.order_by("id").values_list("action", "client_ip")) == [
        ("subscription.register", "203.0.113.9"), ("subscription.sync_requested", "203.0.113.9"),
        ("subscription.update", "203.0.113.9"), ("subscription.sync_requested", "203.0.113.9"),
        ("subscription.sync_requested", "203.0.113.9")]


@pytest.mark.django_db
def test_the_subscription_form_names_its_fields_in_words_and_says_what_the_endpoints_are(client, policy_admin):
    client.force_login(policy_admin)
    form = client.get(reverse("policies:subscription_add")).context["form"]
    assert (form["ca_bundle"].label, form["arm_endpoint"].label, form["authority"].label) == (
        "CA bundle", "ARM endpoint", "Authority")
    assert "https://management.azure.com in Azure's global cloud" in form["arm_endpoint"].help_text
    assert "https://login.microsoftonline.com in Azure's global cloud" in form["authority"].help_text
    page = client.get(reverse("policies:subscription_add")).content.decode()
    assert ">CA bundle</label>" in page and "Ca bundle" not in page
    assert "Microsoft Entra ID URL the portal takes its tokens from" in page


@pytest.mark.django_db
def test_saving_a_subscriptions_settings_keeps_what_a_sync_stored_meanwhile(policy_admin):
    """The edit saved every column of the row as read when the page was posted: a sync that ended meanwhile had its
    Defender check, resource groups and last sync put back as they were before it."""
    from django.utils import timezone

    from policies import services

    subscription = make_subscription(f"/subscriptions/{PROD}")
    read = Subscription.objects.get(pk=subscription.pk)  # as the edit page's post loaded it
    synced_at = timezone.now()
    Subscription.objects.filter(pk=subscription.pk).update(  # a sync ends meanwhile
        defender_p2=True, defender_plan="Standard/P2", resource_groups=["rg-web-prod"], locations=["westeurope"],
        last_sync_status=Subscription.SyncStatus.OK, last_sync_at=synced_at)
    services.subscription_update(actor=policy_admin, subscription=read, display_name="Production")
    subscription.refresh_from_db()
    assert subscription.display_name == "Production"
    assert (subscription.defender_p2, subscription.resource_groups, subscription.last_sync_at) == (
        True, ["rg-web-prod"], synced_at)


def _form_basis(page) -> str:
    return re.search(r'name="basis" value="([0-9a-f.]*)"', page.content.decode()).group(1)


def shown_basis(client, subscription: Subscription) -> str:
    """The basis of the edit form of ``subscription`` as it is shown now (what a browser sends back with it)."""
    return _form_basis(client.get(reverse("policies:subscription_edit", args=[subscription.pk])))


def _edit_data(subscription: Subscription, **changes: str) -> dict:
    data = {"display_name": subscription.display_name, "tenant_id": subscription.tenant_id or TENANT,
            "credential_ref": subscription.credential_ref, "arm_endpoint": subscription.arm_endpoint,
            "authority": subscription.authority, "ca_bundle": subscription.ca_bundle,
            **({"enabled": "on"} if subscription.enabled else {})}
    return {key: value for key, value in {**data, **changes}.items() if value is not None}


@pytest.mark.django_db
def test_an_edit_shown_before_another_admin_saved_the_subscription_is_shown_again_not_saved_over_it(
        client, policy_admin):
    """Two admins edit one subscription: the second save wrote every field of its form back, putting the first's
    change back unseen (here switching on again the subscription the other admin had just switched off)."""
    client.force_login(policy_admin)
    subscription = make_subscription(f"/subscriptions/{PROD}")
    url = reverse("policies:subscription_edit", args=[subscription.pk])
    page = client.get(url)
    shown, typed = _form_basis(page), _edit_data(subscription, display_name="Production")
    Subscription.objects.filter(pk=subscription.pk).update(enabled=False)  # the other admin switched it off
    stale = client.post(url, {**typed, "basis": shown})
    text = stale.content.decode()
    assert stale.status_code == 400
    subscription.refresh_from_db()
    assert (subscription.display_name, subscription.enabled) == ("matrix", False)
    assert "The settings of matrix changed since you opened this page (another admin saved them): Enabled is now off" \
        in text and 'value="Production"' in text  # the values typed are kept
    again = client.post(url, {**typed, "basis": _form_basis(stale)})  # Save again, knowing: applied
    assert again.status_code == 302
    subscription.refresh_from_db()
    assert (subscription.display_name, subscription.enabled) == ("Production", True)
    # A form that does not say what it was shown with is shown again too, unless it sets what is stored.
    Subscription.objects.filter(pk=subscription.pk).update(display_name="Prod")
    assert client.post(url, _edit_data(subscription, display_name="Other")).status_code == 400
    assert client.post(url, _edit_data(subscription, display_name="Prod")).status_code == 302


@pytest.mark.django_db
def test_a_disabled_subscription_is_not_synced_from_its_page_as_sync_now_skips_it(client, policy_admin):
    """Its page's Sync now queued a sync of a subscription switched off (Enabled), which the inventory's Sync now
    and the beat skip."""
    from audit.models import AuditEvent

    subscription = make_subscription(f"/subscriptions/{PROD}")
    Subscription.objects.filter(pk=subscription.pk).update(enabled=False)
    client.force_login(policy_admin)
    page = client.get(reverse("policies:subscription_edit", args=[subscription.pk])).content.decode()
    assert 'id="sync-subscription"' not in page and "switch Enabled on and Save to sync it" in page
    response = client.post(reverse("policies:subscription_sync", args=[subscription.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("policies:subscription_edit", args=[subscription.pk])
    assert (f"{subscription} is disabled, so it is not synced: switch Enabled on and Save to sync it."
            in response.content.decode())
    client.post(reverse("policies:sync_now"))
    assert not SyncRun.objects.exists()
    assert not AuditEvent.objects.filter(action="subscription.sync_requested").exists()


@pytest.mark.django_db
def test_sync_now_is_a_rounded_object_tool_like_the_links_beside_it(client, policy_admin):
    """Sync now (the inventory's and a subscription's) was a small plain button among the rounded object tools."""
    from django.contrib.staticfiles import finders

    subscription = make_subscription(f"/subscriptions/{PROD}")
    client.force_login(policy_admin)
    inventory = client.get(reverse("policies:inventory")).content.decode()
    assert '<button type="submit" id="sync-now" class="button">Sync now</button>' in inventory
    page = client.get(reverse("policies:subscription_edit", args=[subscription.pk])).content.decode()
    assert '<button type="submit" id="sync-subscription" class="button">Sync now</button>' in page
    for text in (inventory, page):
        assert "/static/jitportal/portal.css" in text
    with open(finders.find("jitportal/portal.css"), encoding="utf-8") as css:
        rule = re.search(r"\.object-tools \.button \{([^}]*)\}", css.read()).group(1)
    assert "border-radius: 15px" in rule and "var(--object-tools-bg)" in rule
