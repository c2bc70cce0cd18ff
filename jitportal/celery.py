"""The Celery application: configured once, from Django settings (``CELERY_*``)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitportal.settings.local")

app = Celery("jitportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _create_embedded_broker_folders(sender: Celery, **kwargs) -> None:
    """The embedded filesystem broker needs its folders before any process uses them."""
    from jitportal.lib.health import ensure_broker_folders

    if str(sender.conf.broker_url).startswith("filesystem://"):
        ensure_broker_folders(sender.conf.broker_transport_options, str(sender.conf.result_backend or ""))
