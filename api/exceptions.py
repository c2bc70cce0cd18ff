"""One JSON error shape for the API: ``{"detail": "...", "errors": [...]}``; domain errors become 400/403/404/422.

Services raise Django's ``ValidationError`` and ``PermissionDenied``; DRF knows neither. Without this handler
they would surface as 500s.
"""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, ValidationError
from django.http import Http404
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from policies.access.services import IdempotencyConflict


def _messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [f"{field}: {message}" if field != "__all__" else message
                for field, messages in error.message_dict.items() for message in messages]
    return list(error.messages)


def _flatten(data, path: str = "") -> list[str]:
    """DRF's nested serializer errors as readable ``field.sub: message`` lines."""
    if isinstance(data, dict):
        lines = []
        for key, value in data.items():
            name = "" if key in ("non_field_errors", "detail") else str(key)
            lines += _flatten(value, f"{path}.{name}" if path and name else (name or path))
        return lines
    if isinstance(data, list):
        lines = []
        for index, value in enumerate(data):
            nested = isinstance(value, dict | list)
            lines += _flatten(value, f"{path}[{index}]" if nested else path)
        return lines
    return [f"{path}: {data}" if path else str(data)]


def api_exception_handler(exc, context):
    """DRF's handler, plus Django's ``ValidationError`` → 400 (an idempotency key reused for another operation:
    422), a body past ``DATA_UPLOAD_MAX_MEMORY_SIZE`` or a query past ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` → 400 and
    ``PermissionDenied`` → 403, one shape (Django alone would answer its HTML 400 page to both 400s)."""
    if isinstance(exc, RequestDataTooBig):
        detail = (f"The request body is larger than the portal accepts "
                  f"({settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024} KiB).")
        return Response({"detail": detail, "errors": [detail]}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, TooManyFieldsSent):
        detail = f"The query has more parameters than the portal accepts ({settings.DATA_UPLOAD_MAX_NUMBER_FIELDS})."
        return Response({"detail": detail, "errors": [detail]}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, IdempotencyConflict):
        detail = " ".join(exc.messages)
        return Response({"detail": detail, "errors": [detail]}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    if isinstance(exc, ValidationError):
        messages = _messages(exc)
        return Response({"detail": " ".join(messages) or "Invalid input.", "errors": messages},
                        status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, PermissionDenied):
        detail = str(exc) or "You may not do this."
        return Response({"detail": detail, "errors": [detail]}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, Http404):
        return Response({"detail": "Not found.", "errors": ["Not found."]}, status=status.HTTP_404_NOT_FOUND)
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and set(data) == {"detail"}:
        response.data = {"detail": str(data["detail"]), "errors": [str(data["detail"])]}
    else:
        lines = _flatten(data)
        response.data = {"detail": "Invalid input: " + "; ".join(lines), "errors": lines}
    return response
