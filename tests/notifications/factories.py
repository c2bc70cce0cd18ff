"""Factories for the notifications tests and the authorization matrix: webhooks and requests to notify about."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from notifications.models import Webhook
from notifications.services import event_expand, event_queue, webhook_create
from policies.access.models import AccessRequest
from tests.plugins.personas import IN_SCOPE
from tests.policies import factories as _policy_factories  # noqa: F401 (imports the access factories)
from tests.policies.access.factories import make_access_request

REQUEST_SCOPE = f"{IN_SCOPE}/resourceGroups/rg-notify"


def make_webhook(scope: str, *, url: str = "https://hooks.example.com/jit", format: str = "json",
                 events: list[str] | None = None, name: str = "matrix hook") -> Webhook:
    webhook, _ = webhook_create(actor=None, name=name, url=url, format=format, scope=scope,
                                events=events or ["opened"])
    return webhook


def make_request(requester=None, *, scope: str = REQUEST_SCOPE, ends_in: timedelta = timedelta(hours=1),
                 justification: str = "Patch the kernel (CHG-1234)") -> AccessRequest:
    """An open request on vm-matrix at ``scope``, by ``requester`` (default: a new user without e-mail)."""
    request = make_access_request(scope)
    if requester is not None:
        request.requester = requester
        request.requester_name = requester.get_username()
    request.justification = justification
    request.end_at = timezone.now() + ends_in
    request.save()
    request.ports.update(end_at=request.end_at)
    return request


def record_event(*, request: AccessRequest, event: str, actor=None,
                 detail: dict | None = None) -> tuple[list[int], list[int]]:
    """What the receiver and then its task do, in this process: queue the event and expand it at once.

    Returns (notification ids, delivery ids).
    """
    return event_expand(event_id=event_queue(request=request, event=event, actor=actor, detail=detail))


MATRIX_FACTORIES = {Webhook: make_webhook}
