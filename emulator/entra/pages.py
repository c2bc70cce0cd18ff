"""The HTML the emulated Entra ID shows: account picker, error, signed out, form_post. All values autoescaped."""
from __future__ import annotations

from flask import render_template_string

from emulator.entra.models import EntraApp, EntraTenant, EntraUser

# An empty icon: the browser asks for no ``/favicon.ico``, which the emulator's ARM side would refuse (401).
STYLE = """<link rel="icon" href="data:,"><style>
 body { font-family: system-ui, sans-serif; background: #f2f2f2; margin: 0; color: #1b1b1b; }
 main { max-width: 460px; margin: 60px auto; background: #fff; padding: 32px 40px; box-shadow: 0 2px 6px #0003; }
 h1 { font-size: 1.4rem; } p.app { color: #555; } h2 { font-size: 1rem; color: #555; margin-top: 1.2rem; }
 ul.accounts { list-style: none; padding: 0; margin: 0; }
 ul.accounts button { display: block; width: 100%; text-align: left; margin: 6px 0; padding: 10px 12px;
   background: #fff; border: 1px solid #8a8886; cursor: pointer; font-size: 1rem; color: inherit; }
 ul.accounts button:hover, ul.accounts button:focus-visible { background: #e8f1fb; outline: 2px solid #0067b8; }
 ul.accounts button.hint { border: 2px solid #0067b8; }
 .upn { color: #555; font-size: .85rem; display: block; }
 .cancel { margin-top: 20px; background: #ccc; border: 0; padding: 8px 20px; cursor: pointer; font-size: 1rem; }
 .cancel:focus-visible { outline: 2px solid #0067b8; }
</style>"""

SIGN_IN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in to your account</title>""" + STYLE + """</head>
<body><main>
<h1 id="title">Pick an account</h1>
<p class="app">to continue to <strong>{{ app.display_name }}</strong></p>
{% for tenant, users in groups %}
{% if groups|length > 1 %}<h2 id="tenant-{{ loop.index }}">{{ tenant.display_name }}</h2>{% endif %}
<ul class="accounts" aria-labelledby="{{ 'tenant-%d' % loop.index if groups|length > 1 else 'title' }}">
{% for user in users %}
<li><form method="post">
  {% for name, value in params %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
  <input type="hidden" name="user_oid" value="{{ user.oid }}">
  <button type="submit" data-username="{{ user.username }}"
    {%- if login_hint and user.username|lower == login_hint|lower %} class="hint" autofocus aria-current="true"
    {%- endif %}>{{ user.display_name }}<span class="upn">{{ user.username }}</span></button>
</form></li>
{% endfor %}
</ul>
{% else %}<p>This directory has no accounts that can sign in to this application.</p>{% endfor %}
<form method="post">
  {% for name, value in params %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
  <button class="cancel" type="submit" name="cancel" value="1">Cancel</button>
</form>
</main></body></html>"""

ERROR = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in error</title>""" + STYLE + """</head>
<body><main><h1>Sorry, but we're having trouble signing you in.</h1>
<p id="error-code">{{ code }}</p><p id="error-message">{{ message }}</p></main></body></html>"""

SIGNED_OUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signed out</title>""" + STYLE + """</head>
<body><main><h1>You signed out of your account</h1>
<p>It's a good idea to close all browser windows.</p></main></body></html>"""

FORM_POST = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Working...</title><link rel="icon" href="data:,"></head>
<body onload="document.forms[0].submit()"><main>
<form method="post" action="{{ action }}">
  {% for name, value in fields %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
  <noscript><p>Script is disabled. Click Submit to continue.</p><button type="submit">Submit</button></noscript>
</form></main></body></html>"""


def sign_in_page(groups: list[tuple[EntraTenant, list[EntraUser]]], app: EntraApp,
                 params: list[tuple[str, str]], login_hint: str) -> str:
    """The account picker: one button per user (grouped by tenant when several), and Cancel."""
    return render_template_string(SIGN_IN, groups=groups, app=app, params=params, login_hint=login_hint)


def error_page(code: str, message: str) -> str:
    return render_template_string(ERROR, code=code, message=message)


def signed_out_page() -> str:
    return render_template_string(SIGNED_OUT)


def form_post_page(action: str, fields: dict) -> str:
    """``response_mode=form_post``: the browser posts the result to the redirect URI."""
    return render_template_string(FORM_POST, action=action,
                                  fields=[(k, v) for k, v in fields.items() if v is not None])
