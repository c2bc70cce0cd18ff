"""The portal behind a reverse proxy at ``/jit/``, in headless chromium: the server answers only under the prefix
(as the proxy forwards only that), so a page or static file linked without it fails to load."""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import WSGIRequestHandler
from playwright.sync_api import expect

from tests.plugins.browser import NoDelayServer
from tests.plugins.personas import sign_in_as_breakglass
from tests.plugins.script_prefix import PREFIX

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        """No access log on the test's output."""


def under_prefix(application: WSGIHandler):
    """A WSGI app passing requests under ``/jit`` to ``application`` with the prefix as ``SCRIPT_NAME`` (what
    gunicorn does when told ``SCRIPT_NAME=/jit``); anything else is a 404, as the proxy would not forward it."""
    def app(environ: dict, start_response):
        path = environ["PATH_INFO"]
        if path != PREFIX and not path.startswith(f"{PREFIX}/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"outside the portal's prefix"]
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = PREFIX, path.removeprefix(PREFIX) or "/"
        return application(environ, start_response)
    return app


@pytest.fixture
def prefixed_server(fresh_settings) -> Iterator[str]:
    """The portal served at ``http://127.0.0.1:<port>/jit``, its handler made before any request as at start-up."""
    server = NoDelayServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(under_prefix(WSGIHandler()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{PREFIX}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_under_a_prefix_the_pages_load_their_styles_and_scripts_and_link_under_it(page, prefixed_server,
                                                                                  breakglass_admin):
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    # A request the next navigation cancels (the favicon, fetched after the page loaded) did not fail to load.
    page.on("requestfailed", lambda r: failed.append(f"failed {r.url}: {r.failure}")
            if r.failure != "net::ERR_ABORTED" else None)
    page.goto(f"{prefixed_server}/")
    expect(page).to_have_url(f"{prefixed_server}/accounts/login/?next={PREFIX}/")
    sign_in_as_breakglass(page, prefixed_server)

    expect(page.locator("#header #site-name")).to_have_text("JIT Portal")
    sheets = page.evaluate("() => [...document.styleSheets].map(s => s.href).filter(Boolean)")
    assert any(href.endswith(f"{PREFIX}/static/admin/css/base.css") for href in sheets), sheets
    assert any(href.endswith(f"{PREFIX}/static/jitportal/portal.css") for href in sheets), sheets
    header_bg = page.locator("#header").evaluate("el => getComputedStyle(el).backgroundColor")
    assert header_bg not in ("rgba(0, 0, 0, 0)", "transparent")

    page.locator("#portal-nav").get_by_role("link", name="Inventory").click()
    page.wait_for_url(f"{prefixed_server}/inventory/")  # and loaded: every file it links has answered
    expect(page.locator("#changelist")).to_be_visible()
    page.wait_for_function("() => typeof window.htmx === 'object'")  # htmx's script loaded and ran
    assert failed == []
    hrefs = page.evaluate("() => [...document.querySelectorAll('[href],[src]')]"
                          ".map(e => e.getAttribute('href') || e.getAttribute('src'))")
    assert [h for h in hrefs if re.match(r"/(?!jit/)", h)] == []
