"""Where ingestion gets its subscriptions and gateways: the registered subscriptions of ``policies``."""
from __future__ import annotations

from typing import Any


def registered_subscription_ids() -> list[str]:
    """Ids of the subscriptions the portal manages (``policies.Subscription``)."""
    from policies.models import Subscription

    return [str(s).lower() for s in Subscription.objects.values_list("subscription_id", flat=True)]


def gateway_for(subscription_id: str) -> Any:
    """The cloud gateway of a registered subscription (``policies.gateway``); use it in a ``with`` block, which
    closes it."""
    from policies.gateway import gateway_for_subscription
    from policies.models import Subscription

    subscription = Subscription.objects.get(subscription_id__iexact=subscription_id)
    return gateway_for_subscription(subscription)
