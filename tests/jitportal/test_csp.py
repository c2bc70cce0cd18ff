"""The Content-Security-Policy header: every response carries the portal's strict policy, whose ``form-action`` also
allows the origin of ``ENTRA_AUTHORITY``; ``CSP_REPORT_URI`` adds a report endpoint; ``check --deploy`` warns when the
policy is missing or loosened. (Pages running under it in a browser: ``test_csp_browser.py``.)"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.test import APIRequestFactory, force_authenticate

from api.views import MeView
from jitportal.checks import content_security_policy_check
from jitportal.lib.csp import content_security_policy, origin_of

ROOT = Path(__file__).resolve().parents[2]
STRICT = {"default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self' data:",
          "object-src": "'none'", "base-uri": "'none'", "frame-ancestors": "'none'"}


def policy_of(response) -> dict[str, str]:
    """The header's directives, by name."""
    return dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/accounts/login/", "/healthz", "/api/schema/", "/api/docs/", "/api/docs/?script",
                                 "/static/jitportal/portal.css"])
def test_every_response_carries_the_strict_policy(client, url):
    response = client.get(url)
    assert response.status_code in (200, 503), (url, response.status_code)  # /healthz: no broker runs here
    assert policy_of(response) == {**STRICT, "form-action": "'self' https://127.0.0.1:9"}  # test ENTRA_AUTHORITY
    assert "Reporting-Endpoints" not in response


@pytest.mark.django_db
def test_the_pages_of_a_signed_in_user_carry_it_too(client, requester):
    client.force_login(requester)
    for url in ("/", "/requests/", "/accounts/me/tokens/"):
        response = client.get(url)
        assert response.status_code == 200 and policy_of(response)["script-src"] == "'self'", url


@pytest.mark.django_db
@pytest.mark.parametrize(("authority", "allowed"), [
    ("https://login.microsoftonline.us/", "'self' https://login.microsoftonline.us"),
    ("https://LOGIN.chinacloudapi.cn", "'self' https://login.chinacloudapi.cn"),
    ("https://127.0.0.1:8443/", "'self' https://127.0.0.1:8443"),
    ("https://[::1]:8443", "'self' https://[::1]:8443"),
    ("https://login.example; script-src *", "'self'"),  # never a directive of its own
    ("login.microsoftonline.com", "'self'"),
])
def test_form_action_allows_the_origin_of_entra_authority_as_it_is_set(client, settings, authority, allowed):
    """"Sign in with Entra ID" posts to the portal, which redirects to the authority: the browser checks form-action
    on that redirect. The setting is read per response (the browser tests point it at their emulator)."""
    settings.ENTRA_AUTHORITY = authority
    assert policy_of(client.get("/accounts/login/"))["form-action"] == allowed


def test_origin_of_keeps_the_scheme_host_and_port_only():
    assert origin_of("https://user@login.microsoftonline.com:443/tenant/v2.0?x=1") == \
        "https://login.microsoftonline.com:443"
    assert origin_of("") == origin_of("ftp://example.com") == origin_of("https://a b.example") == ""


@pytest.mark.django_db
def test_a_report_uri_is_named_for_report_uri_and_report_to(client, settings):
    settings.CONTENT_SECURITY_POLICY = content_security_policy(report_uri="https://csp.example.com/r?site=jit")
    response = client.get("/accounts/login/")
    policy = policy_of(response)
    assert (policy["report-uri"], policy["report-to"]) == ("https://csp.example.com/r?site=jit", "csp-endpoint")
    assert response["Reporting-Endpoints"] == 'csp-endpoint="https://csp.example.com/r?site=jit"'
    assert {name: policy[name] for name in STRICT} == STRICT


@pytest.mark.parametrize("value", ["/csp-report", "javascript:alert(1)", "https://csp.example.com/r; script-src *",
                                   'https://csp.example.com/"', "https://csp.example.com/a,b",
                                   "https:///csp-report", "https://csp.example.com/r\\x", "https://csp.example.com/é",
                                   "https://csp.example.com/\x01", "https://[::1/r"])
def test_a_report_uri_that_is_not_an_absolute_url_is_refused(value):
    with pytest.raises(ImproperlyConfigured, match="CSP_REPORT_URI"):
        content_security_policy(report_uri=value)


def test_a_bad_report_uri_stops_start_up():
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CSP_"))}
    clean.update(DJANGO_SETTINGS_MODULE="jitportal.settings.local", CSP_REPORT_URI="csp-report")
    out = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=clean,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "CSP_REPORT_URI='csp-report' is not an absolute http(s) URL" in out.stderr


def test_the_deploy_check_accepts_the_portals_policy():
    assert content_security_policy_check() == []


def test_the_deploy_check_warns_without_the_middleware(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "ContentSecurityPolicy" not in m]
    assert [w.id for w in content_security_policy_check()] == ["jitportal.W001"]


def test_the_deploy_check_warns_of_a_loosened_or_partial_policy(settings):
    directives = dict(content_security_policy()["DIRECTIVES"])
    directives["script-src"] = ["'self'", "'unsafe-inline'"]
    directives["style-src"] = ["*"]
    del directives["object-src"]
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": directives}
    warnings = content_security_policy_check()
    assert [(w.id, w.msg) for w in warnings] == [
        ("jitportal.W002", "The Content-Security-Policy sets no object-src."),
        ("jitportal.W003", "The Content-Security-Policy allows script-src 'unsafe-inline', style-src *.")]


@pytest.mark.parametrize(("directive", "value"), [
    ("script-src", "data:"), ("default-src", "blob:"), ("object-src", "data:"), ("frame-ancestors", "*"),
    ("form-action", "https:"), ("base-uri", "*")])
def test_the_deploy_check_warns_of_scripts_from_data_urls_and_of_any_host_framing_or_receiving_forms(
        settings, directive, value):
    """``script-src data:`` runs what an injection writes as surely as ``'unsafe-inline'``; a ``frame-ancestors``,
    ``form-action`` or ``base-uri`` open to any host undoes the clickjacking, form and base-URL protection."""
    directives = dict(content_security_policy()["DIRECTIVES"])
    directives[directive] = [*directives[directive], value]
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": directives}
    assert [(w.id, w.msg) for w in content_security_policy_check()] == [
        ("jitportal.W003", f"The Content-Security-Policy allows {directive} {value}.")]


def test_the_deploy_check_lets_images_come_from_data_urls(settings):
    assert "data:" in settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["img-src"]
    assert content_security_policy_check() == []


@pytest.mark.django_db
def test_the_browsable_api_holds_no_inline_style_or_script(requester):
    """API_BROWSABLE (the demo's default) draws DRF's pages: without Pygments' inline <style> (templates/rest_framework/
    api.html); DRF's only inline <script> is a JSON data block, which is not run."""
    request = APIRequestFactory().get("/api/v1/me/", HTTP_ACCEPT="text/html")
    force_authenticate(request, user=requester)
    response = MeView.as_view(renderer_classes=[BrowsableAPIRenderer, JSONRenderer])(request)
    html = response.render().content.decode()
    assert requester.username in html and "rest_framework/css/default.css" in html
    assert "<style" not in html and " style=" not in html
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts and all("src=" in tag or 'type="application/json"' in tag for tag in scripts), scripts
