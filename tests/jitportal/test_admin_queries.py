"""Every page of the Django admin (break-glass staff only) takes any query without a 500: its search is capped in
words, a filter holding a NUL is a 400 (``jitportal.lib.admin.SafeQueryAdmin``); the pages the portal does not use
are gone."""
from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import models
from django.urls import reverse

from jitportal.lib.admin import SafeQueryAdmin

pytestmark = pytest.mark.django_db
REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
IDS = [model._meta.label for model, _ in REGISTERED]


def _changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=IDS)
def test_every_admin_page_refuses_a_search_no_name_holds_in_words_not_a_500(client, breakglass_admin, model,
                                                                            model_admin):
    """SQLite refuses a LIKE pattern over 50,000 bytes, or thousands of words; PostgreSQL a NUL character."""
    assert isinstance(model_admin, SafeQueryAdmin)
    if not model_admin.search_fields:
        return
    client.force_login(breakglass_admin)
    for typed, said in (("a" * 60_000, "Search: give at most 200 characters (this search has 60000)"),
                        ("a " * 30_000, "Search: give at most 200 characters (this search has 60000)"),
                        ("web\x00", "")):  # the admin's search form refuses a NUL: all rows are shown
        response = client.get(_changelist(model), {"q": typed})
        assert response.status_code == 200, (typed[:10], response.status_code)
        assert said in response.content.decode()
    assert client.get(_changelist(model), {"q": "web"}).status_code == 200


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=IDS)
def test_every_admin_page_refuses_a_filter_holding_a_nul_with_a_400(client, breakglass_admin, model, model_admin):
    """The admin filters by the model's fields from the query; PostgreSQL refuses a NUL in text and jsonb."""
    field = next((f.name for f in model._meta.fields
                  if isinstance(f, models.CharField | models.TextField) and f.name != "password"), None)
    if field is None:  # no text to filter by
        return
    client.force_login(breakglass_admin)
    assert client.get(_changelist(model), {field: "a\x00b"}).status_code == 400
    assert client.get(_changelist(model), {field: "ab"}).status_code == 200


def test_the_admin_has_no_page_for_what_the_portal_does_not_use(client, breakglass_admin):
    """Entra ID's app comes from the settings, tokens are not stored, roles come from role mappings."""
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
    from django.contrib.auth.models import Group

    assert not any(admin.site.is_registered(model) for model in (SocialApp, SocialToken, EmailAddress, Group))
    client.force_login(breakglass_admin)
    assert client.get("/admin/socialaccount/socialapp/").status_code == 404
    linked = admin.site.get_model_admin(SocialAccount)
    request = client.get(_changelist(SocialAccount)).wsgi_request
    assert not (linked.has_change_permission(request) or linked.has_delete_permission(request)
                or linked.has_add_permission(request))
