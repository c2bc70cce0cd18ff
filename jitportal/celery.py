"""The Celery application: configured once, from Django settings (``CELERY_*``)."""
import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_init, worker_ready

from jitportal.lib import filesystem_broker

filesystem_broker.install()  # the embedded broker writes each message whole before a worker can take it
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitportal.settings.local")

app = Celery("jitportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _database_hygiene(sender=None, **kwargs) -> None:
    """What Django does around every request, around every task: close a connection that is broken or older than
    ``CONN_MAX_AGE``, keep a healthy one (``CELERY_DB_REUSE_MAX`` stops Celery closing it after every task)."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # an eager task runs inside its caller's transaction: never close that connection
    from django.db import close_old_connections

    close_old_connections()


@worker_ready.connect
@worker_process_init.connect
def _warm_up(**kwargs) -> None:
    """Import the Azure SDK before the first task (about half a second), not during someone's first request."""
    import cloud.azure  # noqa: F401
