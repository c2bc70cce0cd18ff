"""The Content-Security-Policy's violations in headless chromium, as the browser tests collect them.

Every ``securitypolicyviolation`` event of a portal page, and every console message about the policy, is collected,
each named with the directive it broke, what it refused and where.
"""
from __future__ import annotations

from playwright.sync_api import BrowserContext

# Runs in every document before its own scripts: reports each violation to the test through a binding.
LISTEN = """document.addEventListener("securitypolicyviolation", e => window.__cspViolation(
    `${e.effectiveDirective} refused ${e.blockedURI || "?"} on ${e.documentURI} at ${e.sourceFile}:${e.lineNumber}`
    + (e.sample ? ` (${e.sample})` : "")));"""
# After a page's load event: two turns of its event loop, so violations of its start-up scripts have been reported.
SETTLED = "() => new Promise(resolve => setTimeout(() => setTimeout(resolve, 50), 0))"


def watch(context: BrowserContext) -> list[str]:
    """Collect the violations of every page of ``context`` (and the console's words on them) from now on."""
    found: list[str] = []
    context.expose_binding("__cspViolation", lambda _source, report: found.append(report))
    context.add_init_script(LISTEN)
    context.on("console", lambda message: found.append(f"console: {message.text}")
               if "Content Security Policy" in message.text else None)
    return found
