"""How drf-spectacular documents the API's request bodies: a body that refuses fields it does not have says so
with ``additionalProperties: false``, so the schema names exactly what is accepted."""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerExtension


class ClosedBodyExtension(OpenApiSerializerExtension):
    """``ClosedSerializer`` bodies: an unknown field is a 400 (``api.serializers.ClosedSerializer``)."""

    target_class = "api.serializers.ClosedSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction) -> dict:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        return {**schema, "additionalProperties": False}


class PolicyPortInExtension(ClosedBodyExtension):
    """A policy port: ``policies.jit_json`` refuses a field it does not have (``POLICY_PORT_FIELDS``)."""

    target_class = "api.serializers.PolicyPortInSerializer"
    match_subclasses = False


class RequestPortInExtension(ClosedBodyExtension):
    """A requested port: ``policies.jit_json`` refuses a field it does not have (``REQUEST_PORT_FIELDS``)."""

    target_class = "api.serializers.RequestPortInSerializer"
    match_subclasses = False
