"""The Celery tasks, run in this process: beat's fan-out over registered subscriptions, and retention."""
import pytest

from audit.models import ActivityLogEvent, IngestionState
from audit.tasks import ingest_all, ingest_subscription, prune
from jitportal.celery import app as celery_app
from tests.policies.factories import DEV, PROD, closed_after_use, gateways_built, register

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def eager_tasks():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def test_beat_ingests_every_registered_subscription_through_its_gateway(fresh_emulator, eager_tasks):
    register(fresh_emulator, PROD, "Contoso Production")
    register(fresh_emulator, DEV, "Contoso Dev/Test")
    assert ingest_all() == 2
    states = {s.subscription_id: s for s in IngestionState.objects.all()}
    assert set(states) == {PROD, DEV}
    assert all(s.last_success_at and not s.last_error for s in states.values())
    assert ActivityLogEvent.objects.filter(subscription_id=PROD).exists()


def test_the_task_reports_what_it_read_and_a_second_run_adds_nothing(fresh_emulator, eager_tasks):
    register(fresh_emulator, PROD, "Contoso Production")
    first = ingest_subscription.apply(args=(PROD,)).get()
    assert first["complete"] and first["added"] == ActivityLogEvent.objects.count() > 0
    second = ingest_subscription.apply(args=(PROD,)).get()
    assert second["added"] == 0 and second["pages"] >= 1


def test_an_ingestion_closes_the_gateway_it_built(fresh_emulator, eager_tasks, monkeypatch):
    register(fresh_emulator, PROD, "Contoso Production")
    built = gateways_built(monkeypatch)
    assert ingest_subscription.apply(args=(PROD,)).get()["complete"]
    assert len(built) == 1 and closed_after_use(built[0])


def test_a_subscription_whose_gateway_cannot_be_made_says_why_on_its_ingestion_state(fresh_emulator, eager_tasks):
    """Its credential reference is configured nowhere (removed from the settings): no run starts, and the state the
    ingestion page shows says why instead of nothing at all."""
    register(fresh_emulator, PROD, "Contoso Production", credential_ref="removed")
    assert ingest_subscription.apply(args=(PROD,)).failed()
    state = IngestionState.objects.get(subscription_id=PROD)
    assert state.last_error == ("Forbidden: CredentialConfiguration: No credential 'removed' is configured "
                                "(PORTAL_CREDENTIALS).")
    assert state.last_error_at is not None and state.running_since is None


def test_an_unexpected_error_reading_the_activity_log_is_said_on_the_state_and_releases_it(
        fresh_emulator, eager_tasks, monkeypatch):
    from tests.policies.factories import unexpected_gateways

    register(fresh_emulator, PROD, "Contoso Production")
    unexpected_gateways(monkeypatch, "iter_activity_events", KeyError("properties"))
    assert ingest_subscription.apply(args=(PROD,)).failed()
    state = IngestionState.objects.get(subscription_id=PROD)
    assert (state.last_error, state.running_since) == ("KeyError: 'properties'", None)


def test_the_prune_task_keeps_the_trail_by_default(settings):
    from audit.services import audit_record

    audit_record(actor=None, action="policy.save")
    assert prune() == {"activity": 0, "trail": 0}
