"""Errors in the shapes Entra ID (OAuth 2.0 JSON) and Microsoft Graph (OData JSON) return them."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import Response, jsonify


class EntraError(Exception):
    """An OAuth 2.0 error: HTTP status, ``error``, the AADSTS number and its description (starting ``AADSTSn:``)."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description


class GraphError(Exception):
    """A Microsoft Graph error: HTTP status, OData error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def with_trace(description: str) -> str:
    """``description`` followed by the Trace ID, Correlation ID and Timestamp Entra ID adds, one a line, to the
    ``error_description`` it redirects a browser back with."""
    timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{description}\r\nTrace ID: {uuid.uuid4()}\r\nCorrelation ID: {uuid.uuid4()}\r\nTimestamp: {timestamp}"


def entra_error_response(err: EntraError) -> Response:
    now = datetime.now(UTC)
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    response = jsonify({
        "error": err.error,
        "error_description": f"{err.description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
                             f"Timestamp: {timestamp}",
        "error_codes": [err.code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={err.code}",
    })
    response.status_code = err.status
    return response


def graph_error_response(err: GraphError) -> Response:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    response = jsonify({"error": {"code": err.code, "message": err.message,
                                  "innerError": {"date": now, "request-id": str(uuid.uuid4()),
                                                 "client-request-id": str(uuid.uuid4())}}})
    response.status_code = err.status
    if err.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
    return response
