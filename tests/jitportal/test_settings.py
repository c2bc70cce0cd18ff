"""Settings switch by environment: each case loads settings in a fresh interpreter."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
from django.conf import settings
django.setup()
from jitportal.celery import app
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "name": str(settings.DATABASES["default"]["NAME"]),
    "db_options": settings.DATABASES["default"].get("OPTIONS", {}),
    "broker": app.conf.broker_url,
    "backend": str(app.conf.result_backend),
    "transport_options": app.conf.broker_transport_options,
    "debug": settings.DEBUG,
    "always_eager": app.conf.task_always_eager,
}))
"""


def load_settings(module: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_", "DJANGO_"))}
    clean.update(env, DJANGO_SETTINGS_MODULE=module)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_defaults_need_no_server():
    loaded = load_settings("jitportal.settings.local")
    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["name"].endswith("db.sqlite3")
    assert loaded["broker"].startswith("filesystem://")
    assert loaded["transport_options"]["data_folder_in"] == loaded["transport_options"]["data_folder_out"]
    assert loaded["backend"].startswith("file://")
    assert loaded["always_eager"] is False


def test_database_url_switches_to_postgresql():
    loaded = load_settings(
        "jitportal.settings.local", DATABASE_URL="postgres://jit:pw@db.example.invalid:5432/jitportal"
    )
    assert loaded["engine"] == "django.db.backends.postgresql"
    assert loaded["name"] == "jitportal"
    assert loaded["db_options"]["options"] == "-c jit=off"  # compiling costs more than the queries gain
    assert load_settings("jitportal.settings.local", DATABASE_URL="postgres://jit:pw@db.example.invalid:5432/"
                         "jitportal?options=-c%20jit%3Don")["db_options"]["options"] == "-c jit=on"
    assert "options" not in load_settings("jitportal.settings.local", DATABASE_JIT="true",
                                          DATABASE_URL="postgres://jit:pw@db.example.invalid:5432/jitportal"
                                          )["db_options"]


def test_broker_url_switches_to_redis_with_results_in_redis():
    loaded = load_settings("jitportal.settings.local", CELERY_BROKER_URL="redis://127.0.0.1:6379/5")
    assert loaded["broker"] == "redis://127.0.0.1:6379/5"
    assert loaded["backend"] == "redis://127.0.0.1:6379/5"
    assert "data_folder_in" not in loaded["transport_options"]


def test_broker_url_switches_to_rabbitmq():
    loaded = load_settings("jitportal.settings.local", CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//")
    assert loaded["broker"].startswith("amqp://")
    assert loaded["backend"] == "rpc://"


def test_production_refuses_to_start_without_a_secret_key():
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    clean.update(DJANGO_SETTINGS_MODULE="jitportal.settings.production", DJANGO_ALLOWED_HOSTS="jit.example.com")
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    assert "DJANGO_SECRET_KEY" in out.stderr


def test_production_reads_the_secret_from_a_mounted_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("x" * 64 + "\n")
    loaded = load_settings(
        "jitportal.settings.production", DJANGO_SECRET_KEY_FILE=str(secret), DJANGO_ALLOWED_HOSTS="jit.example.com"
    )
    assert loaded["debug"] is False


@pytest.mark.parametrize("value", ["yes-please", "2"])
def test_a_boolean_that_is_neither_true_nor_false_stops_start_up(value):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    clean.update(DJANGO_SETTINGS_MODULE="jitportal.settings.local", DJANGO_DEBUG=value)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    assert "DJANGO_DEBUG" in out.stderr and "is not a boolean" in out.stderr


@pytest.mark.parametrize("env", [{"API_TOKEN_DEFAULT_DAYS": "400"}, {"API_TOKEN_MAX_DAYS": "0"},
                                 {"API_TOKEN_SIGN_IN_MAX_DAYS": "0"}, {"API_TOKEN_MAX_DAYS": "3000000"},
                                 {"API_TOKEN_SIGN_IN_MAX_DAYS": "3000000"}])
def test_api_token_lifetimes_that_contradict_each_other_stop_start_up(env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "API_TOKEN_"))}
    clean.update(DJANGO_SETTINGS_MODULE="jitportal.settings.local", **env)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    assert "ImproperlyConfigured" in out.stderr and "API_TOKEN_DEFAULT_DAYS=" in out.stderr


def test_production_check_deploy_reports_nothing(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    clean.update(
        DJANGO_SETTINGS_MODULE="jitportal.settings.production",
        DJANGO_SECRET_KEY="k" * 20 + "-production-secret-with-enough-entropy-0123456789",
        DJANGO_ALLOWED_HOSTS="jit.example.com",
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "System check identified no issues (0 silenced)." in out.stdout


def test_production_ignores_the_demo_ports():
    """EMULATOR_PORT and PORTAL_PORT are the demo's (``make run``): production starts whatever they hold, e.g. the
    ``tcp://10.0.0.7:8443`` Kubernetes sets for a service named emulator in the same namespace."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    clean.update(
        DJANGO_SETTINGS_MODULE="jitportal.settings.production",
        DJANGO_SECRET_KEY="k" * 20 + "-production-secret-with-enough-entropy-0123456789",
        DJANGO_ALLOWED_HOSTS="jit.example.com", EMULATOR_PORT="tcp://10.0.0.7:8443", PORTAL_PORT="tcp://10.0.0.8:80",
    )
    out = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                         env=clean, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


REDIRECT_PROBE = """
import json, django
django.setup()
from django.http import HttpResponse
from django.middleware.security import SecurityMiddleware
from django.test import RequestFactory
middleware = SecurityMiddleware(lambda request: HttpResponse())
print(json.dumps({script_name + path: middleware(RequestFactory().get(
    path, HTTP_HOST="jit.example.com", SCRIPT_NAME=script_name)).status_code
    for script_name in ("", "/jit") for path in ("/healthz", "/", "/accounts/login/")}))
"""


def test_production_redirects_plain_http_except_the_health_check(tmp_path):
    """A load balancer probes /healthz over plain http: a redirect would hide a 503 (probes count 3xx as up)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_", "DJANGO_"))}
    clean.update(DJANGO_SETTINGS_MODULE="jitportal.settings.production", DJANGO_SECRET_KEY="k" * 50,
                 DJANGO_ALLOWED_HOSTS="jit.example.com", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    out = subprocess.run([sys.executable, "-c", REDIRECT_PROBE], cwd=ROOT, env=clean, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "/healthz": 200, "/": 301, "/accounts/login/": 301,
        # behind a proxy at /jit/ (request.path, which the exemptions are matched against, holds the prefix)
        "/jit/healthz": 200, "/jit/": 301, "/jit/accounts/login/": 301}


HEADERS_PROBE = """
import json, django
django.setup()
from django.test import Client
response = Client().get("/accounts/login/", secure=True, HTTP_HOST="jit.example.com")
print(json.dumps({"status": response.status_code, "headers": dict(response.headers)}))
"""


def test_production_sends_a_strict_content_security_policy_and_the_other_security_headers(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_", "DJANGO_", "ENTRA_",
                                                                       "CSP_"))}
    clean.update(DJANGO_SETTINGS_MODULE="jitportal.settings.production", DJANGO_SECRET_KEY="k" * 50,
                 DJANGO_ALLOWED_HOSTS="jit.example.com", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                 ENTRA_AUTHORITY="https://login.microsoftonline.us/")
    out = subprocess.run([sys.executable, "-c", HEADERS_PROBE], cwd=ROOT, env=clean, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["status"] == 200
    headers = answer["headers"]
    policy = dict(directive.strip().split(" ", 1) for directive in headers["Content-Security-Policy"].split(";"))
    assert policy == {"default-src": "'self'", "script-src": "'self'", "style-src": "'self'",
                      "img-src": "'self' data:", "object-src": "'none'", "base-uri": "'none'",
                      "frame-ancestors": "'none'", "form-action": "'self' https://login.microsoftonline.us"}
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert (headers["X-Frame-Options"], headers["X-Content-Type-Options"]) == ("DENY", "nosniff")
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "Reporting-Endpoints" not in headers


def test_env_example_documents_every_variable_the_settings_read_and_nothing_else():
    read = set()
    for module in (ROOT / "jitportal" / "settings").glob("*.py"):
        read |= set(re.findall(r'env(?:\.\w+|_secret|_bool)\(\s*"([A-Z][A-Z0-9_]+)"', module.read_text()))
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    assert read - documented == set()
    # PORTAL_CREDENTIAL_<REF>_* is read per reference; manage.py and the WSGI/Celery entry points read the module.
    assert {name for name in documented - read
            if not name.startswith("PORTAL_CREDENTIAL_") and name != "DJANGO_SETTINGS_MODULE"} == set()


DUMP = """
import json
from django.conf import settings
print(json.dumps({name: repr(getattr(settings, name)) for name in dir(settings) if name.isupper()}))
"""


def dump_settings(module: str, env: dict[str, str]) -> dict:
    """Every setting of ``module`` (as repr) loaded with ``env`` on top of an environment without portal variables."""
    names = re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    clean = {k: v for k, v in os.environ.items() if k not in names and not k.startswith(("DATABASE_", "CELERY_"))}
    clean.update(env, DJANGO_SETTINGS_MODULE=module)
    out = subprocess.run([sys.executable, "-c", DUMP], cwd=ROOT, env=clean, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_an_empty_variable_takes_the_default():
    """An env file (docker --env-file, compose, systemd) with `DATABASE_URL=` sets it to "": that is no value, so
    the default applies, as `.env.example` says beside each empty line; it stopped start-up with KeyError
    'ENGINE', sent Celery to amqp://localhost and turned DEBUG and the demo credential off in the local settings."""
    example = (ROOT / ".env.example").read_text()
    empty = dict.fromkeys(re.findall(r"^([A-Z][A-Z0-9_]+)=$", example, re.MULTILINE), "")
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_DEBUG", "PORTAL_DEMO_CREDENTIAL"} <= set(empty)
    assert dump_settings("jitportal.settings.local", empty) == dump_settings("jitportal.settings.local", {})


def test_env_example_as_the_demo_env_file_keeps_the_demo_settings():
    """`make run` starts its processes with honcho, which loads a `.env` beside the Procfile: a copy of
    `.env.example` must leave the demo as it is (its emulator sign-in, console e-mail, local webhooks)."""
    from honcho.environ import parse

    loaded = parse((ROOT / ".env.example").read_text())
    assert dump_settings("jitportal.settings.local", loaded) == dump_settings("jitportal.settings.local", {})


DEMO_PORTS_PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({"emulator": settings.DEMO_EMULATOR_URL, "authority": settings.ENTRA_AUTHORITY,
                  "base_url": settings.PORTAL_BASE_URL, "session_cookie": settings.SESSION_COOKIE_NAME,
                  "csrf_cookie": settings.CSRF_COOKIE_NAME}))
"""


def _demo_ports(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "ENTRA_", "PORTAL_", "EMULATOR_", "SESSION_", "CSRF_"))}
    clean.update(env, DJANGO_SETTINGS_MODULE="jitportal.settings.local")
    return subprocess.run([sys.executable, "-c", DEMO_PORTS_PROBE], cwd=ROOT, env=clean, capture_output=True,
                          text=True, timeout=60)


def test_the_demo_ports_default_to_8000_and_8443():
    out = _demo_ports()
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "emulator": "https://127.0.0.1:8443", "authority": "https://127.0.0.1:8443",
        "base_url": "http://127.0.0.1:8000", "session_cookie": "sessionid", "csrf_cookie": "csrftoken"}


def test_the_demo_follows_portal_port_and_emulator_port():
    out = _demo_ports(PORTAL_PORT="8001", EMULATOR_PORT="9443")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "emulator": "https://127.0.0.1:9443", "authority": "https://127.0.0.1:9443",
        "base_url": "http://127.0.0.1:8001", "session_cookie": "sessionid-8001", "csrf_cookie": "csrftoken-8001"}


@pytest.mark.parametrize("value", ["http", "0", "70000", "-1"])
def test_a_port_that_is_not_a_tcp_port_stops_start_up(value):
    out = _demo_ports(EMULATOR_PORT=value)
    assert out.returncode != 0
    assert f"EMULATOR_PORT={value!r} is not a TCP port (1-65535)." in out.stderr


def test_the_procfile_starts_the_emulator_where_the_settings_point_the_demo():
    emulator = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("emulator:"))
    assert "--port ${EMULATOR_PORT:-8443} " in emulator
    makefile = (ROOT / "Makefile").read_text()
    assert "EMULATOR_PORT ?= 8443" in makefile
    assert "EMULATOR_PORT=$(EMULATOR_PORT) $(BIN)/python manage.py seed_demo" in makefile
