"""azure-core pipeline pieces the gateway adds to every SDK client and credential: bounded retries and a call
recorder."""
from __future__ import annotations

import threading
from typing import Any

from azure.core.exceptions import ClientAuthenticationError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy

from .config import CloudEndpoint


class BoundedRetryPolicy(RetryPolicy):
    """azure-core's retry, except that a ``Retry-After`` longer than ``retry_after_max`` is not waited out
    here: the 429/503 is returned, becomes ``Throttled``/``Transient`` and the caller reschedules."""

    def __init__(self, *, retry_after_max: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry_after_max = retry_after_max

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after is not None and retry_after > self.retry_after_max:
            return False
        return super().is_retry(settings, response)


class SignInRetryPolicy(BoundedRetryPolicy):
    """The retry of a credential's calls to Entra: bounded as above, and a 429 still there after it is raised
    with its response. MSAL would read the 429's body as a token error and drop the status and ``Retry-After``,
    and a throttled sign-in would look like a bad credential to ``cloud.errors``."""

    def send(self, request: PipelineRequest) -> PipelineResponse:
        response = super().send(request)
        if response.http_response.status_code == 429:
            raise ClientAuthenticationError(response=response.http_response)
        return response


class CallRecorder(SansIOHTTPPolicy):
    """Counts the HTTP attempts a gateway makes and keeps Azure's ``x-ms-request-id`` of the last answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.last_request_id = ""

    def on_request(self, request: PipelineRequest) -> None:
        with self._lock:
            self.calls += 1

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:
        request_id = response.http_response.headers.get("x-ms-request-id")
        if request_id:
            with self._lock:
                self.last_request_id = request_id


def client_options(endpoint: CloudEndpoint, recorder: CallRecorder) -> dict[str, Any]:
    """Keyword arguments for any azure-mgmt client: ARM URL, token scope, CA, timeouts, retries, recorder."""
    options: dict[str, Any] = {
        "base_url": endpoint.arm_endpoint,
        "credential_scopes": [endpoint.credential_scope],
        "connection_timeout": endpoint.connection_timeout,
        "read_timeout": endpoint.read_timeout,
        "retry_policy": BoundedRetryPolicy(
            retry_total=endpoint.retry_total, retry_backoff_factor=endpoint.retry_backoff_factor,
            retry_backoff_max=endpoint.retry_backoff_max, retry_after_max=endpoint.retry_after_max),
        "per_retry_policies": [recorder],
    }
    if endpoint.ca_bundle:
        options["connection_verify"] = endpoint.ca_bundle
    return options
