"""/healthz reports database and broker reachability."""
import pytest

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
def test_it_goes_503_when_the_embedded_broker_folder_is_gone(client, settings, tmp_path):
    options, _ = broker_options("filesystem://", tmp_path / "missing")
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "not writable" in response.json()["checks"]["broker"]["error"]


def test_it_refuses_other_methods(client):
    assert client.post("/healthz").status_code == 405
