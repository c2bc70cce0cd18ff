"""Static file URLs under the script prefix of the request being answered (a reverse proxy's ``/jit/``).

Django adds the script prefix to a relative ``STATIC_URL`` when the setting is first read and caches the result for
the life of the process (``LazySettings.__getattr__``), and the static files storage keeps the value it read when
first used. A WSGI server reads it at start-up (whitenoise's middleware does), when the prefix is ``/``, so pages
linked their static files at ``/static/`` while their page links, reversed per request, carried the prefix.

These storages keep ``STATIC_URL`` relative (``STORAGES``' ``base_url`` option) and put the current script prefix in
front of each URL they give, as ``reverse`` does for pages: whatever sets it (the server's ``SCRIPT_NAME``, a
proxy's header, ``FORCE_SCRIPT_NAME``), pages and static files follow the same prefix.
"""
from __future__ import annotations

from django.contrib.staticfiles.storage import StaticFilesStorage
from django.urls import get_script_prefix
from whitenoise.storage import CompressedStaticFilesStorage


class ScriptPrefixedUrlMixin:
    """Give a relative base URL's file URLs under the script prefix read at each call (absolute ones as they are)."""

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
