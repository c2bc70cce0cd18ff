"""Playwright with the system's chromium: one browser per session, a fresh context per test; the live server it
talks to."""
import os
import shutil
import socket
from collections.abc import Iterator

import pytest
from django.test.testcases import ThreadedWSGIServer
from playwright.sync_api import Browser, Page, sync_playwright
from pytest_django.live_server_helper import LiveServer

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]


def chromium_path() -> str:
    """The system chromium (Playwright's own browser download is not used)."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


class NoDelayServer(ThreadedWSGIServer):
    """Django's live server with Nagle's algorithm off on each connection. It writes an answer's headers and body
    separately, and on a connection the browser keeps alive the body waited for the browser's delayed ACK of the
    headers: about 40 ms on every page, fragment and file after the first."""

    def get_request(self) -> tuple[socket.socket, object]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address


@pytest.fixture(scope="session")
def live_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """pytest-django's ``live_server`` (same address options), on ``NoDelayServer``."""
    address = (request.config.getvalue("liveserver") or os.getenv("DJANGO_LIVE_TEST_SERVER_ADDRESS")
               or "localhost")
    server = LiveServer(address, start=False)
    server.thread.server_class = NoDelayServer
    server.start()
    yield server
    server.stop()
