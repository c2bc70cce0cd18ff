"""Azure Resource Manager ids."""
from __future__ import annotations


def resource_name(resource_id: str) -> str:
    """The last segment of an ARM id: the resource's name ("" for no id)."""
    return resource_id.rstrip("/").rsplit("/", 1)[-1] if resource_id else ""
