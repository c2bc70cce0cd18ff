"""Microsoft Graph, read as the portal itself: a user's groups when their sign-in token had too many to list.

Entra ID lists at most 200 groups in a token; past that it leaves ``groups`` out and says so (``_claim_names``
pointing at ``_claim_sources``, or ``hasgroups`` in v2 implicit flows). The endpoint in ``_claim_sources`` names the
retired Azure AD Graph, and a URL taken from a token is never one to send the portal's credential to: the portal
asks Microsoft Graph at ``ENTRA_GRAPH_URL``, with a client-credentials token for that Graph (``graph_scope``:
``https://graph.microsoft.com/.default``, or a national cloud's, e.g. ``https://graph.microsoft.us/.default``)
from the sign-in's authority (``ENTRA_AUTHORITY``, the user's tenant, ``ENTRA_CLIENT_ID``/``ENTRA_CLIENT_SECRET``),
trusting ``ENTRA_CA_BUNDLE`` as sign-in does. One token call and one call per page, once per sign-in; nothing is
cached.

The call is ``GET /v1.0/users/{oid}/transitiveMemberOf/microsoft.graph.group?$select=id&$top=999``, following
``@odata.nextLink``, rather than ``POST /v1.0/users/{oid}/getMemberObjects``:

- it is transitive, as the groups claim is (membership through nested groups counts);
- the ``microsoft.graph.group`` cast returns groups only, where getMemberObjects mixes in directory roles and
  administrative units whose bare ids cannot be told apart from groups;
- it pages with ``@odata.nextLink`` without a ceiling on the total, where getMemberObjects answers in one
  response whose size Graph caps;
- it is a GET, and needs only the ``GroupMember.Read.All`` application permission.

It lists Microsoft 365 groups as well as security groups (getMemberObjects' ``securityEnabledOnly``); that grants
nothing by itself, since a role mapping names one group's object id.
"""
from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings

log = logging.getLogger(__name__)

HTTP_TIMEOUT = (5, 10)  # connect, read (seconds): the person waits on the sign-in
PAGE_SIZE = 999  # Graph's largest page for directory object lists
MAX_PAGES = 50  # about 50,000 groups; past that the lookup gives up rather than hold up the sign-in
PERMISSION_HINT = ("The portal's app registration needs the GroupMember.Read.All application permission, with "
                   "admin consent.")


class GraphUnavailable(Exception):
    """Microsoft Graph could not be asked, or refused; ``reason`` says which, in words shown on My access."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _verify() -> str | bool:
    return str(settings.ENTRA_CA_BUNDLE) if settings.ENTRA_CA_BUNDLE else True


def _error_text(response: requests.Response) -> str:
    """``<status> <code>: <message>`` from an OAuth 2.0 or Graph (OData) error body, whatever its shape."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # Graph: {"error": {"code", "message"}}
        code, message = error.get("code"), error.get("message")
    else:  # Entra ID: {"error", "error_description": "AADSTSn: … Trace ID: …"}
        code, message = error, str(body.get("error_description") or "").split(" Trace ID:")[0]
    text = f"{response.status_code} {code or response.reason}"
    return f"{text}: {message}"[:300] if message else text


def graph_scope(graph_url: str) -> str:
    """The client-credentials scope of the Microsoft Graph at ``graph_url``: its scheme and host + ``/.default``.

    Each cloud's Graph is its own resource (``https://graph.microsoft.us``, ``https://dod-graph.microsoft.us``,
    ``https://microsoftgraph.chinacloudapi.cn``); a token for the public cloud's is refused there.
    """
    parts = urlsplit(graph_url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/.default"


def _app_token(session: requests.Session, tenant_id: str) -> str:
    response = session.post(
        f"{settings.ENTRA_AUTHORITY}/{quote(tenant_id, safe='')}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": settings.ENTRA_CLIENT_ID,
              "client_secret": settings.ENTRA_CLIENT_SECRET, "scope": graph_scope(settings.ENTRA_GRAPH_URL)},
        timeout=HTTP_TIMEOUT, verify=_verify(),
    )
    body = response.json() if response.status_code == 200 else {}
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise GraphUnavailable(f"Entra ID did not give the portal a token for Microsoft Graph "
                               f"({_error_text(response)}).")
    return token


def _page(session: requests.Session, url: str, token: str) -> dict:
    response = session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT,
                           verify=_verify())
    if response.status_code in (401, 403):
        raise GraphUnavailable(f"Microsoft Graph refused to list your groups ({_error_text(response)}). "
                               f"{PERMISSION_HINT}")
    if response.status_code != 200:
        raise GraphUnavailable(f"Microsoft Graph did not list your groups ({_error_text(response)}).")
    body = response.json()
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise GraphUnavailable("Microsoft Graph answered with something that is not a list of groups.")
    return body


def user_group_ids(*, tenant_id: str, object_id: str) -> list[str]:
    """The object ids (lower case, sorted) of every group the user is a member of, directly or through nested groups.

    Raises ``GraphUnavailable`` when Entra ID or Graph cannot be reached, refuses, or answers with something else.
    """
    if not settings.ENTRA_CLIENT_ID or not settings.ENTRA_CLIENT_SECRET:
        raise GraphUnavailable("The portal has no client secret to ask Microsoft Graph with (ENTRA_CLIENT_SECRET).")
    origin = urlsplit(settings.ENTRA_GRAPH_URL)
    url: str | None = (f"{settings.ENTRA_GRAPH_URL}/v1.0/users/{quote(object_id, safe='')}/transitiveMemberOf/"
                       f"microsoft.graph.group?$select=id&$top={PAGE_SIZE}")
    groups: set[str] = set()
    try:
        with requests.Session() as session:
            token = _app_token(session, tenant_id)
            for _ in range(MAX_PAGES):
                body = _page(session, url, token)
                groups.update(str(row["id"]).lower() for row in body["value"]
                              if isinstance(row, dict) and isinstance(row.get("id"), str) and row["id"])
                url = body.get("@odata.nextLink")
                if not url:
                    return sorted(groups)
                link = urlsplit(str(url))
                if (link.scheme, link.netloc) != (origin.scheme, origin.netloc):  # never send the token elsewhere
                    raise GraphUnavailable("Microsoft Graph's next page is on another host; the portal did not "
                                           "follow it.")
    except GraphUnavailable as exc:
        log.warning("Group overage of %s/%s: %s", tenant_id, object_id, exc.reason)
        raise
    except (OSError, ValueError) as exc:  # requests' errors (timeouts, TLS, refused), bad JSON, a missing CA file
        log.warning("Group overage of %s/%s: Microsoft Graph unreachable: %r", tenant_id, object_id, exc)
        raise GraphUnavailable(f"The portal could not reach Microsoft Graph ({type(exc).__name__}).") from exc
    log.warning("Group overage of %s/%s: more than %d pages of groups", tenant_id, object_id, MAX_PAGES)
    raise GraphUnavailable(f"You are in more groups than the portal reads ({MAX_PAGES * PAGE_SIZE}).")
