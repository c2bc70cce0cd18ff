"""The API's rate limits, all counting per client address read one way (``client_ident``).

DRF's own ``get_ident`` believes any caller's ``X-Forwarded-For``, so a new forged address per call would never
meet a limit. ``AnonThrottle`` and ``UserThrottle`` are DRF's, identifying anonymous callers by ``client_ident``;
``FailedAuthThrottle`` counts failed authentications, checked before any token is looked at (DRF's throttles run
after authentication, so a caller with a bad or missing token would never meet them).
"""
from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from policies.access.client_ip import client_ip


def client_ident(request) -> str:
    """The client's address: ``X-Forwarded-For`` only from ``ACCESS_TRUSTED_PROXIES``, else ``REMOTE_ADDR``."""
    return client_ip(request.META) or request.META.get("REMOTE_ADDR", "")


class ClientIdentMixin:
    """A throttle identifying callers by ``client_ident``, its rate read from the setting ``rate_setting``."""

    rate_setting: str

    def get_rate(self) -> str:
        return getattr(settings, self.rate_setting)

    def get_ident(self, request) -> str:
        return client_ident(request)


class AnonThrottle(ClientIdentMixin, AnonRateThrottle):
    """Anonymous calls per client address (``API_THROTTLE_ANON``)."""

    rate_setting = "API_THROTTLE_ANON"


class UserThrottle(ClientIdentMixin, UserRateThrottle):
    """Calls per user, or per client address when anonymous (``API_THROTTLE_USER``)."""

    rate_setting = "API_THROTTLE_USER"


class FailedAuthThrottle(ClientIdentMixin, SimpleRateThrottle):
    """Counts 401s per address (``API_THROTTLE_FAILED_AUTH``); past the rate every call gets 429."""

    scope = "failed_auth"
    rate_setting = "API_THROTTLE_FAILED_AUTH"

    def get_cache_key(self, request, view=None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def _load(self, request) -> None:
        self.key = self.get_cache_key(request)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()

    def exceeded(self, request) -> bool:
        """Whether this address already failed too often (records nothing)."""
        self._load(request)
        return len(self.history) >= self.num_requests

    def record(self, request) -> None:
        """Count one failed authentication of this address."""
        self._load(request)
        self.throttle_success()
