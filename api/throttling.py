"""Failed authentications per client address: DRF's throttles run after authentication, so a caller with a
bad or missing token would never meet them. This one is checked before any token is looked at."""
from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from policies.access.client_ip import client_address


class FailedAuthThrottle(SimpleRateThrottle):
    """Counts 401s per address (``API_THROTTLE_FAILED_AUTH``); past the rate every call gets 429."""

    scope = "failed_auth"

    def get_rate(self) -> str:
        return settings.API_THROTTLE_FAILED_AUTH

    def get_ident(self, request) -> str:
        """The client's address: ``X-Forwarded-For`` only from ``ACCESS_TRUSTED_PROXIES`` (DRF's own reading
        believes any caller's header, so a new forged address per call would never meet the limit)."""
        found = client_address(request.META)
        return str(found.address) if found else request.META.get("REMOTE_ADDR", "")

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
