"""Content negotiation of the API: DRF's, except that a ``?format=`` the view has no renderer for is a 406 naming
the formats it answers (DRF answers 404 "Not found.", as if the URL did not exist), like an ``Accept`` it cannot
satisfy; and views whose first renderer is not JSON answer such errors in the API's JSON shape all the same."""
from __future__ import annotations

from collections.abc import Sequence

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.settings import api_settings

from .renderers import ApiJsonRenderer

SHOWN = 40  # characters of the asked format repeated in the message


def format_asked(request: Request) -> str:
    """The ``format`` query parameter (DRF's ``URL_FORMAT_OVERRIDE``), or an empty string."""
    return request.query_params.get(api_settings.URL_FORMAT_OVERRIDE) or ""


def format_refused(wanted: str, formats: Sequence[str]) -> NotAcceptable:
    """The 406 for ``?format=wanted`` on a URL that answers only ``formats``."""
    shown = wanted if len(wanted) <= SHOWN else wanted[:SHOWN] + "…"
    return NotAcceptable(f"format={shown} is not a format this URL answers: ask for {' or '.join(formats)}, "
                         f"or leave format out.")


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation with an unknown ``format`` refused as a 406, not a 404."""

    def filter_renderers(self, renderers: list, format: str) -> list:
        kept = [renderer for renderer in renderers if renderer.format == format]
        if not kept:
            raise format_refused(format, list(dict.fromkeys(renderer.format for renderer in renderers)))
        return kept


class JsonErrorsMixin:
    """For views whose first renderer is not JSON (the schema's YAML, the docs' HTML): every error comes as the
    API's JSON. DRF renders an error with the renderer negotiated for the answer (a 405 of the schema in YAML, of
    the docs page as an HTML line), or with the first one when none fits the request."""

    def handle_exception(self, exc: Exception):
        response = super().handle_exception(exc)
        self.request.accepted_renderer, self.request.accepted_media_type = ApiJsonRenderer(), ApiJsonRenderer.media_type
        return response

    def perform_content_negotiation(self, request: Request, force: bool = False):
        try:
            return super().perform_content_negotiation(request)
        except NotAcceptable:
            if not force:
                raise
            return ApiJsonRenderer(), ApiJsonRenderer.media_type
