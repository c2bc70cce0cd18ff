"""The ARM error shape: ``{"error": {"code": ..., "message": ...}}`` with an HTTP status."""
from __future__ import annotations


class ArmError(Exception):
    """Raised anywhere in a request; the app turns it into an ARM error response."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def bad_request(code: str, message: str) -> ArmError:
    return ArmError(400, code, message)


def not_found(kind: str, resource_id: str) -> ArmError:
    return ArmError(404, "ResourceNotFound", f"The {kind} '{resource_id}' was not found.")
