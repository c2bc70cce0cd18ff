"""Pages of notifications: the user's e-mail preferences, and webhooks under Settings."""
from __future__ import annotations

import copy

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts import authz
from accounts.access import authenticated_only, requires
from accounts.roles import REQUEST_APPROVE, SETTINGS_WRITE
from jitportal.lib import sealing
from policies.access.client_ip import client_ip

from . import selectors, services
from .forms import PreferenceForm, WebhookForm
from .models import Webhook

SECRET_SESSION_KEY = "notifications_webhook_secret"


def _form_status(request: HttpRequest) -> int:
    """The status of a form page: a POST that comes back to it was invalid (400), like the other settings forms."""
    return 400 if request.method == "POST" else 200


@authenticated_only
@require_http_methods(["GET", "HEAD", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    """The user's own choice of e-mails; those about requests to approve only for approvers (anywhere): anyone else's
    stored choice of them is kept, for when they become one."""
    requester_events, approver_events = services.preferences_of(request.user)
    form = PreferenceForm(request.POST or None, approver=authz.holds_anywhere(request.user, REQUEST_APPROVE),
                          initial={"requester_events": requester_events, "approver_events": approver_events})
    if request.method == "POST" and form.is_valid():
        services.preference_save(actor=request.user, client_ip=client_ip(request.META),
                                 **{"approver_events": approver_events, **form.cleaned_data})
        messages.success(request, "Your notification preferences are saved.")
        return redirect("notifications:preferences")
    return render(request, "notifications/preferences.html",
                  {"title": "Notifications", "form": form, "email": request.user.email},
                  status=_form_status(request))


@requires(SETTINGS_WRITE)
@require_safe
def webhook_list(request: HttpRequest) -> HttpResponse:
    """Webhooks at the scopes the user administers."""
    return render(request, "notifications/webhook_list.html",
                  {"title": "Webhooks", "webhooks": selectors.webhook_list(request.user)})


@requires(SETTINGS_WRITE)
@require_http_methods(["GET", "HEAD", "POST"])
def webhook_create(request: HttpRequest) -> HttpResponse:
    """Add a webhook; its secret is shown once, on the next page."""
    form = WebhookForm(request.POST or None, actor=request.user, initial={"events": ["needs_approval", "opened"]})
    if request.method == "POST" and form.is_valid():
        webhook, secret = services.webhook_create(actor=request.user, client_ip=client_ip(request.META),
                                                  **form.cleaned_data)
        sealing.keep_once(request.session, SECRET_SESSION_KEY, secret, pk=webhook.pk)
        messages.success(request, f"Added webhook {webhook.name}. Copy its secret now: it is not shown again.")
        return redirect("notifications:webhook_detail", pk=webhook.pk)
    return render(request, "notifications/webhook_form.html", {"title": "Add webhook", "form": form},
                  status=_form_status(request))


@requires(SETTINGS_WRITE, object_model=Webhook)
@never_cache  # it may show a new secret
@require_safe
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A webhook's settings and its deliveries, a page at a time (state, attempts, last answer and error)."""
    webhook = selectors.webhook_get(request.user, pk)
    # A HEAD (its body dropped) leaves a new secret for the GET that shows it, as the API tokens page does.
    once = sealing.take_once(request.session, SECRET_SESSION_KEY) if request.method == "GET" else None
    secret = once["secret"] if once and once.get("pk") == webhook.pk else None
    cursor_error = ""
    try:
        page = selectors.delivery_page(webhook, after=request.GET.get("after"), before=request.GET.get("before"))
    except ValidationError as error:  # a page link cut short or edited: the newest deliveries, saying so
        page, cursor_error = selectors.delivery_page(webhook), " ".join(error.messages)
    return render(request, "notifications/webhook_detail.html",
                  {"title": webhook.name, "webhook": webhook, "secret": secret, "deliveries": page.rows,
                   "page": page, "cursor_error": cursor_error})


@requires(SETTINGS_WRITE, object_model=Webhook)
@require_http_methods(["GET", "HEAD", "POST"])
def webhook_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a webhook (its secret stays)."""
    webhook = selectors.webhook_get(request.user, pk)
    # The form validates a copy: a refused edit leaves the page titled as stored.
    form = WebhookForm(request.POST or None, instance=copy.copy(webhook), actor=request.user)
    if request.method == "POST" and form.is_valid():
        services.webhook_update(actor=request.user, webhook=webhook, client_ip=client_ip(request.META),
                                **form.cleaned_data)
        messages.success(request, f"Saved webhook {form.cleaned_data['name']}.")
        return redirect("notifications:webhook_detail", pk=webhook.pk)
    return render(request, "notifications/webhook_form.html",
                  {"title": f"Change webhook {webhook.name}", "form": form, "webhook": webhook},
                  status=_form_status(request))


@requires(SETTINGS_WRITE, object_model=Webhook)
@require_POST
def webhook_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    """Disable an active webhook, or enable a disabled one."""
    webhook = selectors.webhook_get(request.user, pk)
    services.webhook_update(actor=request.user, webhook=webhook, active=not webhook.active,
                            client_ip=client_ip(request.META))
    messages.success(request, f"Webhook {webhook.name} {'disabled' if webhook.active else 'enabled'}.")
    return redirect("notifications:webhook_detail", pk=webhook.pk)


@requires(SETTINGS_WRITE, object_model=Webhook)
@require_POST
def webhook_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    """Replace the webhook's secret; the new one is shown once."""
    webhook = selectors.webhook_get(request.user, pk)
    secret = services.webhook_rotate_secret(actor=request.user, webhook=webhook, client_ip=client_ip(request.META))
    sealing.keep_once(request.session, SECRET_SESSION_KEY, secret, pk=webhook.pk)
    messages.success(request, "New secret made. Copy it now: it is not shown again; the old one no longer verifies.")
    return redirect("notifications:webhook_detail", pk=webhook.pk)


@requires(SETTINGS_WRITE, object_model=Webhook)
@require_POST
def webhook_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue a signed ``test`` delivery; its outcome appears under recent deliveries."""
    webhook = selectors.webhook_get(request.user, pk)
    if not webhook.active:  # it would be refused at once ("the webhook was disabled"): say so instead
        messages.error(request, f"Webhook {webhook.name} is disabled: enable it to send a test.")
        return redirect("notifications:webhook_detail", pk=webhook.pk)
    delivery = services.webhook_test(actor=request.user, webhook=webhook, client_ip=client_ip(request.META))
    messages.success(request, f"Test delivery {delivery.delivery_id} queued; reload to see its outcome.")
    return redirect("notifications:webhook_detail", pk=webhook.pk)


@requires(SETTINGS_WRITE, object_model=Webhook)
@require_http_methods(["GET", "HEAD", "POST"])
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Confirm (GET) and delete (POST) a webhook and its delivery history."""
    webhook = selectors.webhook_get(request.user, pk)
    if request.method == "POST":
        name = webhook.name
        services.webhook_delete(actor=request.user, webhook=webhook, client_ip=client_ip(request.META))
        messages.success(request, f"Deleted webhook {name}.")
        return redirect("notifications:webhook_list")
    return render(request, "notifications/webhook_delete.html",
                  {"title": f"Delete webhook {webhook.name}", "webhook": webhook})
