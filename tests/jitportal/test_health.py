"""/healthz reports database and broker reachability."""
import pytest
from django.db import OperationalError, connection

from jitportal.lib.broker import broker_options


@pytest.mark.django_db
def test_it_is_healthy_when_database_and_broker_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True


@pytest.mark.django_db
def test_it_needs_no_sign_in(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_it_goes_503_when_a_redis_broker_is_down(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_it_tells_anonymous_callers_no_host_or_credential_of_a_failing_server(client, settings, caplog):
    settings.CELERY_BROKER_URL = "redis://:hunter2-secret@127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = client.get("/healthz")
    assert response.status_code == 503
    error = response.json()["checks"]["broker"]["error"]
    assert "127.0.0.1" not in error and ":1" not in error and "hunter2" not in response.content.decode()
    assert "server log" in error
    assert "127.0.0.1:1" in caplog.text  # the operator still learns why


@pytest.mark.django_db
def test_it_goes_503_when_the_embedded_broker_folder_is_gone(client, settings, tmp_path):
    options, _ = broker_options("filesystem://", tmp_path / "missing")
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "not writable" in response.json()["checks"]["broker"]["error"]


def test_it_refuses_other_methods(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_it_tells_of_access_events_no_notifications_worker_took_without_going_503(client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from notifications.models import PendingEvent
    from tests.notifications.factories import make_request

    request = make_request()
    assert client.get("/healthz").json()["checks"]["notifications"] == {"ok": True, "waiting": 0, "given_up": 0}
    late = timezone.now() - timedelta(seconds=3 * settings.NOTIFY_INTERVAL_SECONDS + 1)
    PendingEvent.objects.create(event="opened", request=request, detail={}, occurred_at=late)
    PendingEvent.objects.create(event="closed", request=request, detail={}, occurred_at=timezone.now())  # just now
    PendingEvent.objects.create(event="failed", request=request, detail={}, occurred_at=timezone.now(),
                                attempts=settings.NOTIFY_MAX_ATTEMPTS, last_error="template broke")
    response = client.get("/healthz")
    assert response.status_code == 200
    notifications = response.json()["checks"]["notifications"]
    assert (notifications["ok"], notifications["waiting"], notifications["given_up"]) == (False, 1, 1)
    assert settings.CELERY_NOTIFICATIONS_QUEUE in notifications["error"]


@pytest.mark.django_db
def test_it_goes_503_when_the_database_is_down_even_for_a_caller_with_a_session(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("probe"))  # a browser's cookie: its session is stored

    def refuse(execute, sql, params, many, context):
        raise OperationalError("connection refused")

    with connection.execute_wrapper(refuse):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ok"] is False
