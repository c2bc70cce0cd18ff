from django.apps import AppConfig
from django.conf import settings


class JitportalConfig(AppConfig):
    """The project itself: start-up preparation shared by web, worker and beat processes."""

    name = "jitportal"
    verbose_name = "JIT Portal"

    def ready(self) -> None:
        from jitportal import checks  # noqa: F401 - registers the deploy checks
        from jitportal.lib.health import ensure_broker_folders

        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            ensure_broker_folders(settings.CELERY_BROKER_TRANSPORT_OPTIONS, settings.CELERY_RESULT_BACKEND)
