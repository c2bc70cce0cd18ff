"""Who am I: the caller, as the API sees it."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import authz

from .. import serializers as s
from ..access import api_authenticated
from .base import READ_ERRORS, ApiView


@api_authenticated
class MeView(ApiView):
    """The caller: who the token or session acts as, and the portal roles it carries."""

    @extend_schema(operation_id="me", responses={200: s.MeSerializer, **READ_ERRORS}, tags=["me"])
    def get(self, request: Request) -> Response:
        auth = request.auth
        kind = "session" if auth is None else ("entra" if isinstance(auth, dict) else "api_token")
        grants = authz.grants_for(request.user)
        roles = [{"role": g.role.name, "scope": g.scope} for g in grants]
        if authz.is_superuser(request.user):
            roles.insert(0, {"role": "superuser", "scope": authz.EVERYWHERE})
        return Response({"username": request.user.get_username(),
                         "displayName": getattr(request.user, "display_name", "") or "",
                         "authentication": kind, "roles": roles})
