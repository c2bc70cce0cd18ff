"""The HTML the emulated Entra ID shows: the sign-in page and error pages (autoescaped)."""
from flask import render_template_string

SIGN_IN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to {{ tenant.display_name }}</title>
<style>
 body { font-family: system-ui, sans-serif; background: #f2f2f2; margin: 0; }
 main { max-width: 440px; margin: 60px auto; background: #fff; padding: 32px 40px; box-shadow: 0 2px 6px #0003; }
 h1 { font-size: 1.4rem; } p.app { color: #555; }
 form.user button { display: block; width: 100%; text-align: left; margin: 6px 0; padding: 10px 12px;
   background: #fff; border: 1px solid #8a8886; cursor: pointer; font-size: 1rem; }
 form.user button:hover, form.user button:focus { background: #e8f1fb; outline: 2px solid #0067b8; }
 form.user button.hint { border: 2px solid #0067b8; }
 .upn { color: #555; font-size: .85rem; display: block; }
 .cancel { margin-top: 20px; background: #ccc; border: 0; padding: 8px 20px; cursor: pointer; }
</style></head>
<body><main>
<h1>Pick an account</h1>
<p class="app">to continue to <strong>{{ app.display_name }}</strong> ({{ tenant.display_name }})</p>
{% for user in tenant.users %}
<form class="user" method="post">
  {% for name, value in params %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
  <input type="hidden" name="user_oid" value="{{ user.oid }}">
  <button type="submit" data-username="{{ user.username }}"
    {%- if user.username == login_hint %} class="hint" autofocus{% endif %}>
    {{ user.display_name }}<span class="upn">{{ user.username }}</span></button>
</form>
{% else %}<p>This tenant has no users.</p>{% endfor %}
<form method="post">
  {% for name, value in params %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
  <button class="cancel" type="submit" name="cancel" value="1">Cancel</button>
</form>
</main></body></html>"""

ERROR = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in error</title></head>
<body><main><h1>Sorry, but we're having trouble signing you in.</h1>
<p id="error-code">{{ code }}</p><p id="error-message">{{ message }}</p></main></body></html>"""

SIGNED_OUT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signed out</title></head>
<body><main><h1>You signed out of your account</h1>
<p>It's a good idea to close all browser windows.</p></main></body></html>"""


def sign_in_page(tenant, app, params: list[tuple[str, str]], login_hint: str) -> str:
    return render_template_string(SIGN_IN, tenant=tenant, app=app, params=params, login_hint=login_hint)


def error_page(code: str, message: str) -> str:
    return render_template_string(ERROR, code=code, message=message)


def signed_out_page() -> str:
    return render_template_string(SIGNED_OUT)
