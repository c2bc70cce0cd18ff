"""The forms written by ``generic/_form_fields.html`` (webhooks, access rules, role mappings, subscriptions, Azure
custom roles): the request form's grid (``form-grid``), each field's label in its own column with no colon after it,
and each field's errors and help in its row, named by its control."""
import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

# The pages whose form is written by the generic template.
PAGES = ["notifications:webhook_add", "policies:rule_new", "accounts:rolemapping_add", "policies:subscription_add",
         "accounts:role_definitions"]
GRID = '<fieldset class="module aligned form-grid">'


def fields_part(page: str) -> str:
    """The page's form grid: from its fieldset to the end of its form."""
    start = page.index(GRID)
    return page[start:page.index("</form>", start)]


def row(page: str, name: str) -> str:
    """The markup of field ``name``'s row, up to the next row (or the grid's end)."""
    start = page.index(f'id="row-{name}"')
    end = page.find('class="form-row', start)
    return page[start:end if end != -1 else None]


@pytest.mark.parametrize("name", PAGES)
def test_each_generic_form_is_a_grid_of_labels_without_colons(client, policy_admin, name):
    client.force_login(policy_admin)
    response = client.get(reverse(name))
    page = response.content.decode()
    assert response.status_code == 200 and GRID in page
    grid = fields_part(page)
    assert not re.search(r":\s*</(label|legend)>", grid), re.findall(r">([^<]*:)\s*</(?:label|legend)>", grid)
    for field in response.context["form"].visible_fields():
        shown = row(grid, field.name)
        if field.use_fieldset:
            assert re.search(rf'<legend class="field-label">{re.escape(str(field.label))}</legend>', shown), shown
        else:
            label = rf'<label class="field-label" for="{field.id_for_label}">{re.escape(str(field.label))}</label>'
            assert re.search(label, shown), shown
        assert '<div class="field-input">' in shown
        if field.help_text:  # under the field, named by it
            assert shown.index('<div class="field-input">') < shown.index(f'id="{field.auto_id}_helptext"')


def test_a_fields_errors_sit_in_its_row_and_its_control_names_them(client, policy_admin):
    client.force_login(policy_admin)
    response = client.post(reverse("notifications:webhook_add"), {"format": "json", "events": ["opened"]})
    page = response.content.decode()
    assert response.status_code == 400
    assert 'id="form-errors"' in page and '<a href="#id_name">Name: This field is required.</a>' in page
    name, url = row(page, "name"), row(page, "url")
    assert 'class="form-row errors"' in page[page.index('id="row-name"') - 40:page.index('id="row-name"')]
    # Label, then the error, then the control that names it; the help under the control.
    assert name.index('class="field-label"') < name.index('id="id_name_error"') < name.index('id="id_name"')
    assert re.search(r'<input[^>]*aria-describedby="id_name_error"[^>]*aria-invalid="true"|'
                     r'<input[^>]*aria-invalid="true"[^>]*aria-describedby="id_name_error"', name), name
    assert re.search(r'<input[^>]*id="id_url"', url)
    described = re.search(r'<input[^>]*aria-describedby="([^"]+)"[^>]*id="id_url"', url).group(1).split()
    assert set(described) == {"id_url_helptext", "id_url_error"}
    assert url.index('id="id_url_error"') < url.index('id="id_url"') < url.index('id="id_url_helptext"')


def test_a_generic_form_still_saves(client, policy_admin):
    """The grid changed the markup only: the webhook form posts as before."""
    from notifications.models import Webhook
    from tests.notifications.factories import REQUEST_SCOPE

    client.force_login(policy_admin)
    response = client.post(reverse("notifications:webhook_add"), {
        "name": "chat", "url": "https://hooks.example.com/jit", "format": "json", "events": ["opened"],
        "scope": REQUEST_SCOPE, "active": "on"})
    assert response.status_code in (200, 302), response.content[:500]
    assert Webhook.objects.filter(name="chat").exists()
