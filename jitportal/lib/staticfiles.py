"""Static file URLs under the script prefix of the request being answered (a reverse proxy's ``/jit/``).

Django adds the script prefix to a relative ``STATIC_URL`` when the setting is first read and caches the result for
the life of the process (``LazySettings.__getattr__``), and the static files storage keeps the value it read when
first used. A WSGI server reads it at start-up (whitenoise's middleware does), when the prefix is ``/``, so pages
linked their static files at ``/static/`` while their page links, reversed per request, carried the prefix.

These storages take ``STATIC_URL`` as the settings give it, before any prefix, and put the current script prefix in
front of each URL they give when it is relative, as ``reverse`` does for pages: whatever sets the prefix (the
server's ``SCRIPT_NAME``, a proxy's header, ``FORCE_SCRIPT_NAME``), pages and static files follow the same one. An
absolute ``STATIC_URL`` (``/assets/``, ``https://cdn…/``) is used as it is, as Django does.
"""
from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles.storage import StaticFilesStorage
from django.urls import get_script_prefix
from whitenoise.storage import CompressedStaticFilesStorage


def configured_static_url() -> str:
    """``STATIC_URL`` as set, without the script prefix Django adds to a relative one when it first reads it."""
    settings.STATIC_URL  # noqa: B018 - loads the settings if nothing has yet
    return settings._wrapped.STATIC_URL


class ScriptPrefixedUrlMixin:
    """Give a relative base URL's file URLs under the script prefix read at each call (absolute ones as they are)."""

    def __init__(self, location: str | None = None, base_url: str | None = None, *args, **kwargs) -> None:
        super().__init__(location, configured_static_url() if base_url is None else base_url, *args, **kwargs)

    def url(self, name: str) -> str:
        """The URL of ``name``: the storage's own, under the current script prefix when it is relative."""
        url = super().url(name)
        if url.startswith(("http://", "https://", "/")):
            return url
        return get_script_prefix() + url


class ScriptPrefixedStaticFilesStorage(ScriptPrefixedUrlMixin, StaticFilesStorage):
    """Django's static files storage (files served as they are named), under the request's script prefix."""


class ScriptPrefixedCompressedStaticFilesStorage(ScriptPrefixedUrlMixin, CompressedStaticFilesStorage):
    """whitenoise's compressing storage (production, after ``collectstatic``), under the request's script prefix."""
