from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from policies.access.signals import access_event

        from . import receivers

        access_event.connect(receivers.on_access_event, dispatch_uid="notifications.on_access_event")
