"""The portal's cloud errors, and the one function that turns azure-core/azure-identity errors into them.

Every error says whether trying again later makes sense (``retryable``) and keeps what Azure said: its error
``code`` and ``message``, the HTTP ``status`` and the request ids an Azure support case asks for.
"""
from __future__ import annotations

import contextlib
import json
import re
import ssl
from collections.abc import Iterator

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    DeserializationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceNotFoundError,
    SerializationError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies._utils import parse_retry_after

REQUEST_ID_HEADER = "x-ms-request-id"
CORRELATION_ID_HEADER = "x-ms-correlation-request-id"
_MSAL_HTTP_ERROR = re.compile(r"\bHTTP Error: (\d{3})\b")


class CloudError(Exception):
    """A cloud call failed. ``retryable`` tells a task whether to try again later; ``label`` names the kind of
    failure to a reader (``summary``)."""

    retryable: bool = False
    label: str = ""

    def __init__(self, message: str, *, code: str = "", status: int | None = None, request_id: str = "",
                 correlation_id: str = "", retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.request_id = request_id
        self.correlation_id = correlation_id
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


class NotFound(CloudError):
    """The resource (or its resource group or subscription) does not exist (404).

    ``gone``: Azure itself said so, an ARM error naming its code (``ResourceNotFound``, ``ResourceGroupNotFound``,
    …); a bare 404 (a reverse proxy's page, a wrong route) or one for an unknown resource type says nothing about
    the resource."""

    gone: bool = True

    def __init__(self, message: str, *, gone: bool = True, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.gone = gone


class Forbidden(CloudError):
    """The portal's identity could not sign in or may not do this (401/403, or no usable credential)."""


class TlsConfiguration(CloudError):
    """The portal cannot connect as configured: the CA bundle to trust is missing, unreadable or holds no PEM
    certificate, or the endpoint's certificate does not verify against it. A setting must change: not retryable."""

    label = "Cannot connect (TLS configuration)"


class Invalid(CloudError):
    """Azure refused the request as written (400/409/422); ``code`` and ``message`` say why."""


class Unreadable(CloudError):
    """Azure answered, but the portal cannot read the answer: not JSON, or of a shape the SDK or the conversion into
    ``cloud.types`` did not expect (a field missing, null or of another type). Azure may have carried the request
    out; asking again is not known to answer better: not retryable. ``code`` is ``UnreadableAnswer``; the message
    names the error met, e.g. ``Azure's answer could not be read: KeyError: 'properties'``."""

    def __init__(self, error: BaseException, **kwargs) -> None:
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        if len(reason) > UNREADABLE_REASON_MAX:
            reason = reason[:UNREADABLE_REASON_MAX - 1] + "…"
        super().__init__(f"Azure's answer could not be read: {reason}", code="UnreadableAnswer", **kwargs)


UNREADABLE_REASON_MAX = 240
# What reading an answer raises when it has a shape the reader did not expect (``reading``).
ANSWER_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError)


# ARM's codes of a 404 that is about the request's route, not about whether the resource exists.
NOT_A_RESOURCE = frozenset({"InvalidResourceType", "NoRegisteredProviderFound"})
PROVIDER_NOT_REGISTERED = frozenset({"MissingSubscriptionRegistration", "SubscriptionNotRegistered"})  # Invalid codes


class Throttled(CloudError):
    """Azure asked us to slow down (429); try again after ``retry_after`` seconds when it said so."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class Transient(CloudError):
    """A failure that may pass: 5xx answers, timeouts, connections refused or dropped; ``retry_after`` is
    the wait in seconds Azure asked for (a 503's ``Retry-After``), when it did."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


def _headers(error: AzureError) -> dict[str, str]:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _retry_after(headers: dict[str, str]) -> float | None:
    with contextlib.suppress(ValueError, TypeError):
        if headers.get("retry-after"):
            return parse_retry_after(headers["retry-after"])
        for name in ("retry-after-ms", "x-ms-retry-after-ms"):
            if headers.get(name):
                return parse_retry_after(headers[name]) / 1000.0
    return None


def _code_and_message(error: HttpResponseError) -> tuple[str, str]:
    """Azure's error code and message from ``{"error": {"code", "message"}}`` (or what azure-core kept)."""
    odata = getattr(error, "error", None)
    code = str(getattr(odata, "code", "") or "")
    message = str(getattr(odata, "message", "") or "")
    if not code or not message:
        response = getattr(error, "response", None)
        with contextlib.suppress(Exception):  # the body may be unreadable, empty or not JSON
            body = json.loads(response.text())
            detail = body.get("error", body) if isinstance(body, dict) else {}
            if isinstance(detail, str):  # Entra's token errors: {"error": "invalid_client", "error_description"}
                detail = {"code": detail, "message": body.get("error_description")}
            code = code or str(detail.get("code") or "")
            message = message or str(detail.get("message") or "")
    if not message:
        message = str(getattr(error, "reason", "") or error.message or type(error).__name__)
    return code, message


def summary(error: BaseException) -> str:
    """How a failure reads on a page: the kind of failure (a ``CloudError``'s ``label``, else its class), then
    what was said, e.g. ``Cannot connect (TLS configuration): …``."""
    return f"{getattr(error, 'label', '') or type(error).__name__}: {error}"


UNEXPECTED = "Unexpected error: "
UNEXPECTED_MAX = 300


def unexpected(error: BaseException) -> str:
    """How an error that is not a ``CloudError`` reads where a failure's reason is shown (an answer of a shape the
    portal did not expect, a bug): ``Unexpected error: KeyError: 'properties'``, its class and what it said on one
    line, at most ``UNEXPECTED_MAX`` characters. The stack is for the log, never for a page."""
    text = " ".join(summary(error).split())
    if len(text) > UNEXPECTED_MAX - len(UNEXPECTED):
        text = text[:UNEXPECTED_MAX - len(UNEXPECTED) - 1] + "…"
    return UNEXPECTED + text


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps: its cause and context, azure-core's ``inner_exception``, urllib3's ``reason``
    and exceptions passed as arguments (requests wraps urllib3's error so), each once."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen or len(seen) > 50:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "inner_exception", None),
                   getattr(current, "reason", None), *getattr(current, "args", ())]
        pending += [item for item in wrapped if isinstance(item, BaseException)]


def _tls_problem(error: BaseException) -> str | None:
    """Why no verified TLS connection could be made as configured (the CA bundle, or a certificate that does not
    verify against it), when that is what ``error`` came from; ``None`` for anything else (a connection refused
    or dropped, a handshake cut short: those may pass)."""
    for cause in _causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (f"the endpoint's certificate does not verify against the CA bundle in use "
                    f"({cause.verify_message or cause.reason}): check the subscription's CA bundle")
        if isinstance(cause, ssl.SSLError) and cause.library in ("X509", "PEM"):
            return f"the CA bundle holds no certificate the portal can read ({cause.reason})"
        if isinstance(cause, FileNotFoundError | IsADirectoryError | PermissionError) or (
                type(cause) is OSError and "CA certificate bundle" in str(cause)):
            return f"the CA bundle file cannot be read ({cause})"
    return None


def _from_token_endpoint(error: HttpResponseError) -> bool:
    request = getattr(getattr(error, "response", None), "request", None)
    return "/oauth2/" in str(getattr(request, "url", "") or "")


def _caused_by_connection(error: BaseException) -> bool:
    """True when a credential's failure came from not reaching Entra (refused, dropped, timed out)."""
    seen: set[int] = set()
    current: BaseException | None = error.__cause__ or error.__context__
    while current is not None and id(current) not in seen:
        if isinstance(current, ServiceRequestError | ServiceResponseError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _token_endpoint_status(error: BaseException) -> int | None:
    """The HTTP status the sign-in endpoint answered, when a credential's failure kept it: on the error's
    response, or in the "HTTP Error: 503" that MSAL raises for a 5xx and azure-identity wraps."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        status = getattr(getattr(current, "response", None), "status_code", None)
        if isinstance(status, int):
            return status
        match = _MSAL_HTTP_ERROR.search(str(current))
        if match:
            return int(match.group(1))
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def from_azure(error: Exception) -> CloudError:
    """The portal error for an azure-core / azure-identity exception (already a ``CloudError`` stays as is)."""
    if isinstance(error, CloudError):
        return error
    headers = _headers(error) if isinstance(error, AzureError) else {}
    ids = {"request_id": headers.get(REQUEST_ID_HEADER, ""), "correlation_id": headers.get(CORRELATION_ID_HEADER, "")}
    if isinstance(error, AzureError) and (problem := _tls_problem(error)) is not None:
        where = "the sign-in endpoint" if isinstance(error, ClientAuthenticationError) else "Azure"
        return TlsConfiguration(f"Cannot connect to {where}: {problem}.", code=type(error).__name__, **ids)
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return Transient(f"Could not reach Azure: {error.message}", code=type(error).__name__, **ids)
    if isinstance(error, IncompleteReadError):  # the connection closed in the middle of Azure's answer
        return Transient(f"Azure's answer was cut off: {error.message}", code=type(error).__name__,
                         status=error.status_code, **ids)
    status = getattr(error, "status_code", None)
    if isinstance(error, DecodeError | DeserializationError) and not (isinstance(status, int) and status >= 400):
        # Azure answered a success the SDK could not read; an error answer is classed by its status below (a 5xx
        # whose body is cut off is still worth another try, a 404 is still not found)
        return Unreadable(error, status=status, **ids)
    if isinstance(error, HttpResponseError):
        status = error.status_code
        code, message = _code_and_message(error)
        if isinstance(error, ClientAuthenticationError) and (status is None or _from_token_endpoint(error)):
            # raised by the credential, not by ARM: the portal's identity could not get a token
            if status is None and _caused_by_connection(error):
                return Transient(f"Could not reach the sign-in endpoint: {message}", code=type(error).__name__,
                                 **ids)
            token_status = _token_endpoint_status(error)
            if token_status is not None and (token_status >= 500 or token_status == 408):
                return Transient(f"The sign-in endpoint failed: {message}", code=code or type(error).__name__,
                                 status=token_status, **ids)
            if token_status == 429:
                return Throttled(f"The sign-in endpoint is throttling the portal: {message}",
                                 code=code or "TooManyRequests", status=429, retry_after=_retry_after(headers), **ids)
            return Forbidden(f"Could not sign in to Azure: {message}", code=code or type(error).__name__,
                             status=status, **ids)
        if status == 404 or isinstance(error, ResourceNotFoundError):
            return NotFound(message, code=code or "NotFound", status=404,
                            gone=bool(code) and code not in NOT_A_RESOURCE, **ids)
        if status in (401, 403):
            return Forbidden(message, code=code, status=status, **ids)
        if status == 429:
            return Throttled(message, code=code or "TooManyRequests", status=status,
                             retry_after=_retry_after(headers), **ids)
        if status is not None and (status >= 500 or status == 408):
            return Transient(message, code=code, status=status, retry_after=_retry_after(headers), **ids)
        if status is not None and 400 <= status < 500:
            return Invalid(message, code=code, status=status, **ids)
        return CloudError(message, code=code, status=status, **ids)
    if isinstance(error, AzureError):
        return CloudError(error.message or type(error).__name__, code=type(error).__name__, **ids)
    return CloudError(str(error) or type(error).__name__, code=type(error).__name__)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Run a block of SDK calls; azure errors leave it as portal errors (the original is the ``__cause__``)."""
    try:
        yield
    except CloudError:
        raise
    except (AzureError, SerializationError, DeserializationError) as error:
        raise from_azure(error) from error


@contextlib.contextmanager
def reading() -> Iterator[None]:
    """Run a block that reads Azure's answer (the SDK deserializing it, a conversion into ``cloud.types``): an
    error of a shape it did not expect (``ANSWER_ERRORS``) leaves it as ``Unreadable`` (the original is the
    ``__cause__``). Only reading goes in such a block, never what builds a request from the caller's values."""
    try:
        yield
    except CloudError:
        raise
    except ANSWER_ERRORS as error:
        raise Unreadable(error) from error
