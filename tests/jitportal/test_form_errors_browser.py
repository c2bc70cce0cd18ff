"""A generic form's field with errors, in headless chromium: at 1280 px its label lines up with its control, the
errors standing above both in the field's column; on a phone the label comes first, then the errors, then the
control."""
import pytest
from django.urls import reverse
from playwright.sync_api import Page

from tests.plugins.personas import sign_in_as_breakglass

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 900}


def send_empty_webhook_form(page: Page, base_url: str) -> None:
    """The webhook form sent with no name or URL (the browser's own checks off), so the portal answers with errors."""
    page.goto(f"{base_url}{reverse('notifications:webhook_add')}")
    page.locator("#row-url").evaluate("row => row.closest('form').noValidate = true")
    page.locator("#id_name").fill("")
    page.locator("#row-url").evaluate("row => row.closest('form').requestSubmit()")
    page.wait_for_selector("#id_url_error")


def test_a_fields_label_lines_up_with_its_control_not_its_errors(page: Page, live_server, breakglass_admin):
    sign_in_as_breakglass(page, live_server.url)
    page.set_viewport_size(DESKTOP)
    send_empty_webhook_form(page, live_server.url)
    for name in ("name", "url"):
        label = page.locator(f"#row-{name} > label").bounding_box()
        error = page.locator(f"#id_{name}_error").bounding_box()
        control = page.locator(f"#id_{name}").bounding_box()
        assert label["x"] + label["width"] <= control["x"], (label, control)  # beside it
        assert error["y"] + error["height"] <= control["y"], (error, control)  # the errors above the control
        assert abs(label["y"] - control["y"]) < 8 and label["y"] > error["y"] + 2, (label, error, control)
    unchanged = page.locator("#row-format > label").bounding_box(), page.locator("#id_format").bounding_box()
    assert abs(unchanged[0]["y"] - unchanged[1]["y"]) < 8, unchanged  # a field without errors as before

    page.set_viewport_size(PHONE)
    label = page.locator("#row-url > label").bounding_box()
    error, control = page.locator("#id_url_error").bounding_box(), page.locator("#id_url").bounding_box()
    assert label["y"] + label["height"] <= error["y"] + 1 and error["y"] + error["height"] <= control["y"] + 1, (
        label, error, control)
