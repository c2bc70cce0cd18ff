"""Links that leave the portal (e-mails, webhooks) name ``PORTAL_BASE_URL``, a proxy's prefix in it, once."""
from __future__ import annotations

from django.urls import set_script_prefix

from jitportal.lib.links import portal_url
from notifications import payloads


def test_links_in_notifications_name_the_portal_base_url_once_wherever_they_are_built(settings):
    settings.PORTAL_BASE_URL = "https://portal.example/jit"
    assert payloads.request_url(7) == "https://portal.example/jit/requests/7/"
    # built in a web request under the prefix, or in a worker told FORCE_SCRIPT_NAME (django.setup sets the prefix)
    set_script_prefix("/jit/")
    try:
        assert payloads.request_url(7) == "https://portal.example/jit/requests/7/"
        assert payloads.review_url(7) == "https://portal.example/jit/requests/7/review/"
    finally:
        set_script_prefix("/")


def test_a_page_without_arguments_and_a_base_url_without_a_prefix():
    assert portal_url("notifications:preferences") == "http://testserver/notifications/preferences/"
