"""Local passwords work for break-glass superusers only; everyone else is sent to Entra ID."""
import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def sign_in(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_the_superuser_signs_in_with_a_password(client, breakglass_admin):
    response = sign_in(client, "admin", "correct-horse-1")
    assert response.status_code == 302
    assert client.get(reverse("dashboard")).status_code == 200


@pytest.mark.parametrize("flags", [{}, {"is_staff": True}])
def test_anyone_else_with_a_password_is_refused(client, django_user_model, flags):
    django_user_model.objects.create_user("eve", password="correct-horse-2", **flags)
    response = sign_in(client, "eve", "correct-horse-2")
    assert response.status_code == 200
    assert "break-glass account" in response.content.decode()
    assert client.get(reverse("dashboard")).status_code == 302


def test_a_password_session_ends_when_the_account_stops_being_superuser(client, breakglass_admin):
    sign_in(client, "admin", "correct-horse-1")
    breakglass_admin.is_superuser = False
    breakglass_admin.save()
    assert client.get(reverse("dashboard")).status_code == 302


def test_the_admin_site_refuses_passwords_of_ordinary_staff(client, django_user_model):
    django_user_model.objects.create_user("staffer", password="correct-horse-3", is_staff=True)
    response = client.post(reverse("admin:login"), {"username": "staffer", "password": "correct-horse-3"})
    assert response.status_code == 200
    assert client.get(reverse("admin:index")).status_code == 302


def test_the_sign_in_page_offers_entra_first(client):
    body = client.get(reverse("login")).content.decode()
    assert body.index('id="sign-in-with-entra"') < body.index('id="login-form"')
    assert f'action="{reverse("openid_connect_login", kwargs={"provider_id": "entra"})}"' in body


def test_no_one_can_sign_up_locally(client):
    from accounts.adapters import PortalAccountAdapter

    assert PortalAccountAdapter().is_open_for_signup(None) is False
    assert client.get("/accounts/signup/").status_code in (302, 404)


@pytest.fixture
def empty_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def test_failed_passwords_lock_the_address_out_for_a_while(client, breakglass_admin, settings, empty_cache):
    settings.BREAK_GLASS_MAX_FAILURES = 3
    for _ in range(3):
        assert "break-glass account" in sign_in(client, "admin", "wrong-guess").content.decode()
    response = sign_in(client, "admin", "correct-horse-1")  # even the right password, from this address
    assert response.status_code == 200
    assert "Too many failed sign-ins from your address" in response.content.decode()
    assert client.get(reverse("dashboard")).status_code == 302
    admin_site = client.post(reverse("admin:login"), {"username": "admin", "password": "correct-horse-1"})
    assert "Too many failed sign-ins from your address" in admin_site.content.decode()

    elsewhere = Client(REMOTE_ADDR="192.0.2.10")
    assert sign_in(elsewhere, "admin", "correct-horse-1").status_code == 302


def test_the_admin_site_counts_failures_too(client, breakglass_admin, settings, empty_cache):
    settings.BREAK_GLASS_MAX_FAILURES = 2
    for _ in range(2):
        client.post(reverse("admin:login"), {"username": "admin", "password": "wrong-guess"})
    assert "Too many failed sign-ins" in sign_in(client, "admin", "correct-horse-1").content.decode()


def test_the_lockout_lasts_its_time_whatever_the_caches_default_timeout(client, breakglass_admin, settings, tmp_path):
    """Database and file caches store an incremented counter with the cache's default timeout (300 s unless set),
    which must not cut the lockout short."""
    import time

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                                   "LOCATION": str(tmp_path), "TIMEOUT": 1}}
    settings.BREAK_GLASS_MAX_FAILURES = 2
    settings.BREAK_GLASS_LOCKOUT_SECONDS = 900
    for _ in range(2):
        sign_in(client, "admin", "wrong-guess")
    time.sleep(1.2)  # past the cache's default timeout, far within the lockout
    response = sign_in(client, "admin", "correct-horse-1")
    assert "Too many failed sign-ins from your address" in response.content.decode()
    assert client.get(reverse("dashboard")).status_code == 302
