"""``manage.py check --deploy``: the Content-Security-Policy is sent, and keeps its strict core."""
from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

MIDDLEWARE = "jitportal.middleware.ContentSecurityPolicyMiddleware"
# What no fetch directive of the policy may allow: inline or evaluated code, or any host; nor may those that say where
# the portal's pages are framed, point their relative URLs (base-uri) or send their forms allow any host.
LOOSE = {"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*", "http:", "https:"}
FETCH = ("default-src", "script-src", "script-src-elem", "script-src-attr", "style-src", "style-src-elem",
         "style-src-attr", "object-src")
NAVIGATION = ("base-uri", "frame-ancestors", "form-action")
# Scripts (and plugins) from a data: or blob: URL are code an injected page writes itself, as inline code is.
CODE = ("default-src", "script-src", "script-src-elem", "object-src")
CODE_URLS = {"data:", "blob:", "filesystem:"}
REQUIRED = ("default-src", "script-src", "style-src", "object-src", "base-uri", "frame-ancestors", "form-action")


@register(Tags.security, deploy=True)
def content_security_policy_check(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Warn when responses carry no Content-Security-Policy or one that lets inline code or any host through."""
    if MIDDLEWARE not in settings.MIDDLEWARE:
        return [Warning(f"{MIDDLEWARE} is not in MIDDLEWARE: responses carry no Content-Security-Policy.",
                        id="jitportal.W001")]
    directives = (getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}).get("DIRECTIVES", {})
    missing = [name for name in REQUIRED if not directives.get(name)]
    loose = sorted({f"{name} {value}" for name in (*FETCH, *NAVIGATION) for value in directives.get(name) or ()
                    if value in LOOSE or (name in CODE and value in CODE_URLS)})
    found = []
    if missing:
        found.append(Warning(f"The Content-Security-Policy sets no {', '.join(missing)}.", id="jitportal.W002"))
    if loose:
        found.append(Warning(f"The Content-Security-Policy allows {', '.join(loose)}.", id="jitportal.W003"))
    return found
