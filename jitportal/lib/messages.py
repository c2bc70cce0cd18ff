"""The portal's message storage: Django's default, except that a HEAD request queues nothing."""
from __future__ import annotations

from django.contrib.messages.storage.fallback import FallbackStorage


class HeadlessFallbackStorage(FallbackStorage):
    """A HEAD is answered as its GET without a body (``require_safe``), so a message it queues is never shown with
    it: a path that flashes and redirects (Request access with no VM selected) would show it on the user's next
    page instead, for a request they did not see. Messages stored earlier stay for the next GET."""

    def add(self, level: int, message: str, extra_tags: str = "") -> None:
        if self.request.method == "HEAD":
            return
        super().add(level, message, extra_tags)
