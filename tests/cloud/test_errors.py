"""The mapping of azure-core / azure-identity exceptions that need no HTTP answer to portal errors."""
from __future__ import annotations

import pytest
from azure.core.exceptions import AzureError, IncompleteReadError, ServiceRequestError, ServiceResponseError
from azure.identity import CredentialUnavailableError

from cloud.errors import CloudError, Forbidden, Throttled, Transient, from_azure, translated


def test_an_unavailable_credential_is_forbidden_and_not_retryable():
    error = from_azure(CredentialUnavailableError("ManagedIdentityCredential authentication unavailable"))

    assert isinstance(error, Forbidden) and not error.retryable
    assert "authentication unavailable" in error.message


@pytest.mark.parametrize("azure_error", [ServiceRequestError("refused"), ServiceResponseError("reset by peer")])
def test_connection_failures_are_transient(azure_error):
    error = from_azure(azure_error)

    assert isinstance(error, Transient) and error.retryable and error.status is None


def test_an_answer_cut_off_mid_body_is_transient():
    error = from_azure(IncompleteReadError("Connection broken: IncompleteRead(120 bytes read, 380 more expected)"))

    assert isinstance(error, Transient) and error.retryable
    assert "IncompleteRead" in error.message


def test_any_other_azure_error_is_a_plain_cloud_error():
    error = from_azure(AzureError("something odd"))

    assert type(error) is CloudError and not error.retryable and error.message == "something odd"


def test_a_portal_error_passes_through_unchanged():
    throttled = Throttled("slow down", retry_after=7.0)

    assert from_azure(throttled) is throttled and throttled.retryable


def test_translated_keeps_the_azure_error_as_the_cause():
    original = ServiceResponseError("dropped")

    with pytest.raises(Transient) as caught, translated():
        raise original

    assert caught.value.__cause__ is original


def test_translated_lets_programming_errors_through():
    with pytest.raises(KeyError), translated():
        raise KeyError("not an Azure failure")
