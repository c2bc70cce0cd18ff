"""What a notification says: the JSON payload of an event, its Slack and Teams shapes, and the e-mail text."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Min
from django.template.loader import render_to_string

from accounts.scopes import scope_contains
from audit.redaction import text_redactor
from jitportal.lib.links import portal_url
from jitportal.lib.times import utc_iso
from policies.access.ends import port_end
from policies.access.removals import POLICY_GONE, Removal
from policies.access.validation import window_label
from policies.rules import format_duration

HEADLINES = {
    "submitted": "Access request #{id} submitted",
    "needs_approval": "Access request #{id} needs approval",
    "approved": "Access request #{id} approved",
    "denied": "Access request #{id} denied",
    "approval_expired": "Access request #{id}: approval time ran out",
    "opened": "Access request #{id} is open",
    "expiring": "Access request #{id} ends soon",
    "closed": "Access request #{id} closed",
    "failed": "Access request #{id} failed",
    "test": "Test delivery from the JIT portal",
}
COLOURS = {"approved": "Good", "opened": "Good", "denied": "Attention", "failed": "Attention",
           "approval_expired": "Warning", "expiring": "Warning"}


def request_url(request_id: int) -> str:
    """The absolute URL of a request's page (``PORTAL_BASE_URL`` + its path)."""
    return portal_url("policies:request_detail", pk=request_id)


def review_url(request_id: int) -> str:
    """The absolute URL of a request's review page (where approvers decide; its approvers read the request page
    too, without the requester's connection details)."""
    return portal_url("policies:request_review", pk=request_id)


def person(user) -> dict | None:
    if user is None:
        return None
    return {"username": user.get_username(), "name": str(user)}


def request_summary(request, *, scope: str = "") -> dict:
    """The request as webhooks see it (Azure's names for ports: ``number``, ``endTimeUtc``; ``window`` in words, as
    the e-mails and chat cards give it); with ``scope``, as a webhook there may see it (``scoped``). As in the API, an
    end is given once it is known (``ends.port_end``) and is None before: while the request waits for its approvals,
    or approved until its port opens, and for a port that never opened; ``duration`` (ISO 8601; the request's: its
    longest port's) always gives the window's length. ``start``, as the API's ``startTimeUtc``, is the scheduled
    start, else when the first port opened, and None before (never the time it was asked for: an approved request's
    window starts when it opens)."""
    return scoped(request, {}, scope=scope)[0]


def scoped(request, detail: dict, *, scope: str = "") -> tuple[dict, dict]:
    """(``request_summary``, the event's ``detail``) as a webhook at ``scope`` is sent them, composed once per scope
    when its deliveries are made. A webhook's scope is where the policy admin who set it up administers (only an
    administrator of every scope may leave it empty), so it is sent what a reader of the VMs there sees on the request's
    page: only the request's VMs at or under ``scope``, their latest end as ``end``, ``vms_elsewhere`` counting the
    others, and the request's text (its justification, an approver's comment) with any naming a VM elsewhere
    withheld as the page withholds it (``audit.redaction.text_redactor``: a sentence naming one is withheld whole);
    what of the event may be about the VMs elsewhere is withheld (``scoped_detail``). A webhook whose scope holds
    every VM of the request (or has none) gets all of it."""
    vms, ends, longest, inside, outside = [], [], 0, [], []
    known = False  # some port of the request (of any scope) has a known end
    for vm_row in request.vms.all().prefetch_related("ports"):
        ports = list(vm_row.ports.all())
        port_ends = [port_end(request, p) for p in ports]
        known = known or any(e is not None for e in port_ends)
        if scope and not scope_contains(scope, vm_row.vm_arm_id):
            outside.append(vm_row.vm_arm_id)
            continue
        inside.append(vm_row.vm_arm_id)
        ends += [e for e in port_ends if e is not None]
        longest = max([longest, *(p.duration_seconds for p in ports)])
        vms.append({"name": vm_row.vm_name, "id": vm_row.vm_arm_id,
                    "ports": [{"number": p.number, "state": p.state, "endTimeUtc": utc_iso(e),
                               "duration": _duration(p.duration_seconds)} for p, e in zip(ports, port_ends,
                                                                                          strict=True)]})
    end = max(ends, default=None) if outside else (request.end_at if known else None)
    first_opened = request.ports.aggregate(first=Min("opened_at"))["first"]
    redact = text_redactor(inside, outside, marker=TEXT_WITHHELD)
    summary = {
        "id": request.pk,
        "url": request_url(request.pk),
        "review_url": review_url(request.pk),
        "requester": person(request.requester),
        "state": request.state,
        "approval_state": getattr(request, "approval_state", "not_required"),
        "justification": redact(request.justification),
        "source": request.source_prefix,
        "start": utc_iso(request.scheduled_start or first_opened),
        "end": utc_iso(end),
        "duration": _duration(longest),
        "window": window_text(request, end=end, first_opened=first_opened,
                              window=window_label(timedelta(seconds=longest))),
        "vms": vms,
        **({"vms_elsewhere": len(outside)} if outside else {}),
    }
    return summary, scoped_detail(detail, summary, redact)


def _duration(seconds: int) -> str:
    """A window's length as the API writes it: ISO 8601 (``PT1H30M``)."""
    return format_duration(timedelta(seconds=seconds))


# Event details that may be about VMs of any scope: Azure's error of a failed ``initiate``, the access rules' reasons,
# who removed JIT from which VM.
DETAIL_NAMING_VMS = ("error", "reasons", "removed")
WITHHELD = "Withheld: the request also covers VMs outside this webhook's scope; its page in the portal has the detail."
# A request's text naming a VM outside a webhook's scope (``text_redactor``), as the request's page writes it.
TEXT_WITHHELD = "[withheld: outside this webhook's scope]"


def scoped_detail(detail: dict, summary: dict, redact) -> dict:
    """``detail`` for a webhook whose ``summary`` leaves VMs out: what may be about those VMs is withheld, an
    approver's ``comment`` is ``redact``-ed as the request's page shows it, the ``ports`` opened are only those of its
    VMs, and an ``end`` is its VMs' (``summary["end"]``)."""
    if not summary.get("vms_elsewhere"):
        return detail
    numbers = {port["number"] for vm in summary["vms"] for port in vm["ports"]}
    shown = {}
    for key, value in detail.items():
        if key in DETAIL_NAMING_VMS:
            value = WITHHELD
        elif key == "comment" and isinstance(value, str):
            value = redact(value)
        elif key == "ports" and isinstance(value, list):
            value = [number for number in value if number in numbers]
        elif key == "end":
            value = summary["end"]
        shown[key] = value
    return shown


def event_payload(*, event: str, delivery_id: str, occurred_at: datetime, request: dict | None, actor,
                  detail: dict) -> dict:
    """The JSON body of a delivery (format ``json``)."""
    return {"event": event, "delivery": delivery_id, "occurred_at": utc_iso(occurred_at), "request": request,
            "actor": actor, "detail": detail}


# A closed request's summary by how it ended (``detail["reason"]``).
CLOSED_HEADLINES = {
    "cancelled": "Access request #{id} cancelled",
    "expired": "Access request #{id} ended: its time is up",
    "revoked": "Access request #{id} ended early: Azure revoked it",
}
REPLACED_HEADLINE = "Access request #{id} ended early: a newer request took its port"
# Why a closed request ended (``detail["reason"]``), in words: the raw value is for webhooks' programs.
CLOSED_REASONS = {
    "cancelled": "cancelled before any port opened",
    "closed": "closed before its end time (connections already established are not cut)",
    "expired": "its window ended",
    "revoked": "Azure revoked it before its end",
}
REPLACED_REASON = "a newer request on the same VM port replaced it (Azure keeps one JIT request per port)"
POLICY_GONE_REASON = ("its JIT policy was deleted (JIT was removed from every VM in it): Azure revoked the access and "
                      "removed its rules with it")


def reason_text(detail: dict | None) -> str:
    """``detail["reason"]`` as a reader's sentence (Azure's own reason added to a revocation; one that JIT's or a
    port's removal from the VM caused says who removed it and when, ``detail["removed"]``), or ``""``."""
    detail = detail or {}
    reason, azure_reason = str(detail.get("reason") or ""), str(detail.get("azure_reason") or "")
    if azure_reason == "NewerRequestInitiated":
        return REPLACED_REASON
    removed = detail.get("removed")
    if reason == "revoked" and isinstance(removed, list) and removed:
        return "closed when " + ", and when ".join(Removal.from_detail(item).text() for item in removed
                                                   if isinstance(item, dict))
    if reason == "revoked" and azure_reason == POLICY_GONE:  # the portal's word: Azure had no record left to give
        return POLICY_GONE_REASON
    text = CLOSED_REASONS.get(reason, reason)
    return f"{text} (Azure's reason: {azure_reason})" if reason == "revoked" and azure_reason else text


def title_of(event: str, request_id, detail: dict | None) -> str:
    """The one-line summary of an event (an approval that is not the last one says so; a closed request says
    how it ended)."""
    detail = detail or {}
    if event == "approved" and detail.get("complete") is False:
        return f"Access request #{request_id}: an approval is in, more are needed"
    if event == "closed" and detail.get("azure_reason") == "NewerRequestInitiated":
        return REPLACED_HEADLINE.format(id=request_id)
    if event == "closed" and detail.get("reason") in CLOSED_HEADLINES:
        return CLOSED_HEADLINES[detail["reason"]].format(id=request_id)
    return HEADLINES.get(event, event).format(id=request_id)


def headline(payload: dict) -> str:
    request = payload.get("request") or {}
    return title_of(payload["event"], request.get("id", "?"), payload.get("detail"))


def _lines(payload: dict) -> list[tuple[str, str]]:
    """(label, value) facts of a payload, for chat cards."""
    request = payload.get("request")
    if not request:  # a test delivery: its message, or each fact of its detail
        detail = payload.get("detail") or {}
        if not isinstance(detail, dict):
            return [("Detail", str(detail))]
        return [(str(key).capitalize(), str(value)) for key, value in detail.items()] or [("Detail", "")]
    actor = payload.get("actor") or {}
    ports = ", ".join(f"{vm['name']}: {', '.join(str(p['number']) for p in vm['ports'])}" for vm in request["vms"])
    elsewhere = request.get("vms_elsewhere") or 0
    if elsewhere:  # a scoped webhook: the request's VMs outside its scope are counted, not named
        ports = f"{ports} (and {vm_count(elsewhere)} outside this webhook's scope)" if ports else (
            f"{vm_count(elsewhere)} outside this webhook's scope")
    facts = [("Requester", (request.get("requester") or {}).get("name", "")), ("VMs and ports", ports),
             # A payload stored before it carried ``window`` gives its start and end.
             ("Window", request.get("window")
              or f"{_card_minute(request.get('start'))} to {_card_minute(request.get('end'))} UTC"),
             ("Source", request.get("source") or ""), ("Justification", request.get("justification", "")),
             ("By", actor.get("name", "the portal"))]
    detail = payload.get("detail") or {}
    for key in ("comment", "reason", "error"):
        if detail.get(key) or (key == "reason" and detail.get("azure_reason")):
            facts.append((key.capitalize(), reason_text(detail) if key == "reason" else str(detail[key])))
    return facts


def vm_count(n: int) -> str:
    return f"{n} VM" if n == 1 else f"{n} VMs"


def _card_minute(value: str | None) -> str:
    """A payload's time (``utc_iso``) as the e-mails show it: UTC to the minute, or a dash."""
    return _minute(datetime.fromisoformat(value)) if value else "—"


def asks_approvers(event: str, detail: dict | None) -> bool:
    """The event asks approvers for a decision: a request needs approval, or an approval is in and more are
    needed."""
    return event == "needs_approval" or (event == "approved" and (detail or {}).get("complete") is False)


def _card_link(payload: dict) -> tuple[str | None, str]:
    """(URL, label) of a chat card's button: the review page while approvers are asked, else the request page."""
    request = payload.get("request") or {}
    if asks_approvers(payload["event"], payload.get("detail")) and request.get("review_url"):
        return request["review_url"], "Review in the portal"
    return request.get("url"), "Open in the portal"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# The Markdown subset of Adaptive Cards (emphasis, links, lists) and CommonMark's other marks, backslash-escaped.
TEAMS_INLINE = re.compile(r"([\\`*_~\[\]()<>])")
TEAMS_LINE_START = re.compile(r"^(\s*)([#+-]|\d+\.)", re.MULTILINE)


def _teams_plain(text: str) -> str:
    """Someone's text for an Adaptive Card's Markdown (``TextBlock``, ``Fact.value``), shown as typed: no link,
    emphasis, list, heading or quote."""
    text = TEAMS_INLINE.sub(r"\\\1", text)
    return TEAMS_LINE_START.sub(lambda m: f"{m[1]}{m[2][:-1]}\\{m[2][-1]}", text)


def slack_body(payload: dict) -> dict:
    """A Slack incoming-webhook message: ``text`` (notifications, fallbacks) and Block Kit ``blocks``."""
    title = headline(payload)
    url, label = _card_link(payload)
    # Someone's text goes in plain_text fields, which Slack never formats (mrkdwn has no escape character).
    fields = [{"type": "plain_text", "text": f"{label}:\n{value[:1900] or '—'}", "emoji": False}
              for label, value in _lines(payload)][:10]  # Slack: at most 10 fields of 2000 characters
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack_escape(title)}*"
                                           + (f" <{url}|{label}>" if url else "")}},
              {"type": "section", "fields": fields},
              {"type": "context", "elements": [{"type": "mrkdwn", "text": f"event `{payload['event']}` · delivery "
                                                                        f"{payload['delivery']}"}]}]
    return {"text": title, "blocks": blocks}


def teams_body(payload: dict) -> dict:
    """A Teams incoming-webhook (Workflows) message: an Adaptive Card in a ``message`` wrapper."""
    title = headline(payload)
    url, label = _card_link(payload)
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True,
             "color": COLOURS.get(payload["event"], "Default")},
            {"type": "FactSet", "facts": [{"title": label, "value": _teams_plain(value) or "—"}
                                          for label, value in _lines(payload)]},
        ],
        "actions": [{"type": "Action.OpenUrl", "title": label, "url": url}] if url else [],
    }
    return {"type": "message", "summary": title,
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                             "content": card}]}


def body_for(format_: str, payload: dict) -> dict:
    """The body sent to a webhook of ``format_``."""
    if format_ == "slack":
        return slack_body(payload)
    if format_ == "teams":
        return teams_body(payload)
    return payload


EMAIL_VALUE_INDENT = " " * len("Justification: ")  # the column of the values in ``email/event.txt``


def _fold(text: object) -> str:
    """Someone's text as the value of an e-mail field: its further lines indented under the value, so that none
    can pass for a line of the e-mail itself (a link, another field)."""
    return ("\n" + EMAIL_VALUE_INDENT).join(str(text).splitlines())


def _minute(value: datetime | None) -> str:
    """A time for a reader: UTC to the minute (``2026-11-26 13:37``), or a dash when there is none yet."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value is not None else "—"


def window_text(request, *, end: datetime | None, first_opened: datetime | None, window: str = "") -> str:
    """The request's window for a reader: its times in UTC, from its scheduled start or, once a port opened, the first
    opening (``first_opened``; an approved request's window starts when the last approval lands, not when it was
    asked for) to ``end`` (the request's end or, for a scoped webhook, the latest of its VMs'); or, while no end is
    known (``end`` None: an approval-gated request that has not opened, or one that never did), its length
    (``window``, else the request's) and when it starts."""
    if end is None:
        window = window or request.window
        if request.is_pending:
            return f"{window}, starting when the last approval lands"
        if request.state in ("queued", "opening"):
            return f"{window}, starting when it opens"
        return f"{window} (it never opened)"
    return f"{_minute(request.scheduled_start or first_opened or request.created_at)} to {_minute(end)} UTC"


def email_text(*, event: str, request, actor, detail: dict, approver: bool = False) -> tuple[str, str]:
    """Subject and plain-text body of the e-mail about ``event`` on ``request``. One asking an ``approver`` to decide
    (``asks_approvers``) links to the review page, where they decide; any other to the request's page (as the chat
    cards do), which its approvers read too."""
    summary = request_summary(request)
    title = title_of(event, request.pk, detail)
    subject = f"[{settings.PORTAL_NAME}] {title}"
    review = approver and asks_approvers(event, detail)
    link = summary["review_url"] if review else summary["url"]
    summary["justification"] = _fold(summary["justification"])
    if summary["requester"]:  # Entra ID's name claim: the user's own text, for a guest
        summary["requester"] = {**summary["requester"], "name": _fold(summary["requester"]["name"])}
    body = render_to_string("notifications/email/event.txt", {
        "event": event, "headline": title, "request": summary, "link": link, "review": review,
        "window": summary["window"], "state": request.get_state_display(),
        "approval": request.get_approval_state_display() if request.approval_state != "not_required" else "",
        "actor": _fold(actor) if actor is not None else "the portal", "reason": _fold(reason_text(detail)),
        "detail": {key: _fold(value) if isinstance(value, str) else value for key, value in detail.items()},
        "preferences": portal_url("notifications:preferences"),
        "portal_name": settings.PORTAL_NAME})
    return subject, body
