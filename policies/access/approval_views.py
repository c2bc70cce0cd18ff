"""Approval pages: the approvers' queue, a request's review page with Approve / Deny, and the access rules."""
from __future__ import annotations

import copy

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from accounts import authz
from accounts.access import requires
from accounts.roles import JIT_POLICY_WRITE, REQUEST_APPROVE
from jitportal.lib.tables import seek_list_page

from . import approvals, selectors
from .approval_forms import AccessRuleForm, DecisionForm, NewAccessRuleForm
from .client_ip import client_ip
from .models import AccessRequest, AccessRule, ApprovalState
from .queue_rows import COLUMNS as queue_columns
from .queue_rows import FIELDS as queue_fields
from .queue_rows import queue_rows

PER_PAGE = 50


@requires(REQUEST_APPROVE)
@require_safe
def approval_queue(request: HttpRequest) -> HttpResponse:
    """Requests waiting for my decision, the first to expire first (those expiring together by id): who, why, which
    VMs and ports, the requester's history, time left. Paged by cursor (``after``/``before``, as the Requests list):
    a request decided meanwhile shifts no other onto a page already seen or past the one asked for, and nothing
    counts the queue; a page link the list did not give shows the first page, saying so. A page reads the same few
    queries however long the queue."""
    queue = selectors.approval_queue(request.user).select_related(None).only(*queue_fields)
    page, cursor_error, query = seek_list_page(request, queue, key="approval_expires_at", descending=False,
                                               per_page=PER_PAGE)
    return render(request, "policies/access/approval_queue.html", {
        "title": "Approvals", "page": page, "query": query, "cursor_error": cursor_error,
        "rows": queue_rows(page.rows, now=timezone.now()), "columns": queue_columns})


@requires(REQUEST_APPROVE, object_model=AccessRequest)
@require_safe
def request_review(request: HttpRequest, pk: int) -> HttpResponse:
    """A request as its approvers see it, with Approve / Deny when the user may decide."""
    return _review_page(request, selectors.review_get(request.user, pk))


def _review_page(request: HttpRequest, access: AccessRequest, form: DecisionForm | None = None, *,
                 status: int = 400) -> HttpResponse:
    """The review page; with the ``form`` a refused decision came in (``status``), so the typed comment stays. Why
    it was refused shows even when the request takes no decision from this user (decided meanwhile, already by
    them, their own)."""
    view = selectors.request_view(access, request.user, review=True)
    return render(request, "policies/access/request_detail.html", {
        "title": f"Request #{access.pk}", "access": access, "review": True, "review_page": True,
        "decision_form": (form or DecisionForm()) if view["may_decide"] else None,
        "decision_errors": form.non_field_errors() if form is not None else [], **view},
        status=status if form is not None else 200)


@requires(REQUEST_APPROVE, object_model=AccessRequest)
@require_http_methods(["GET", "HEAD", "POST"])
def request_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve or deny (``decision``), with a comment. Self-approval is refused with 403, saying so. A refused
    decision shows the review page at this URL, so a reload or Back comes here as a GET: sent to the review page."""
    access = selectors.review_get(request.user, pk)
    if request.method != "POST":  # GET or HEAD
        return redirect("policies:request_review", pk=access.pk)
    form = DecisionForm(request.POST)
    if not form.is_valid() or form.cleaned_data["decision"] not in ("approve", "deny"):
        if not form.errors:
            form.add_error(None, "Choose Approve or Deny.")
        return _review_page(request, access, form)
    approve = form.cleaned_data["decision"] == "approve"
    try:
        decided = approvals.request_decide(actor=request.user, request=access, approve=approve,
                                           comment=form.cleaned_data["comment"], client_ip=client_ip(request.META))
    except PermissionDenied as exc:  # their own request, or a VM where they do not approve: the page says which
        form.add_error(None, str(exc))
        return _review_page(request, access, form, status=403)
    except ValidationError as exc:
        field = "comment" if getattr(exc, "code", None) == "comment_required" else None  # marked on its field
        for message in exc.messages:
            form.add_error(field, message)
        return _review_page(request, access, form)
    messages.success(request, _decided_message(decided, approve))
    return redirect("policies:approvals")


def _decided_message(access: AccessRequest, approve: bool) -> str:
    """What a decision did: a denial ends the request; an approval was the last one needed, or says how many more
    are (one approval of two did not approve the request)."""
    if not approve:
        return f"Denied request #{access.pk}."
    if access.approval_state != ApprovalState.PENDING:
        return f"Approved request #{access.pk}: that was the last approval it needed."
    counts = approvals.progress(access)
    missing = (max(counts["first_needed"] - counts["first"], 0)
               + max(counts["second_needed"] - counts["second"], 0))
    return f"Approved request #{access.pk}: {missing} more approval{pluralize(missing)} needed before it opens."


@requires(JIT_POLICY_WRITE)
@require_safe
def rule_list(request: HttpRequest) -> HttpResponse:
    """Access rules at the scopes the user administers, and those at broader scopes that apply there too."""
    return render(request, "policies/access/rule_list.html", {
        "title": "Access rules", "rules": selectors.rule_list(request.user),
        "rules_above": selectors.rules_above(request.user)})


def _rule_form(request: HttpRequest, rule: AccessRule | None) -> AccessRuleForm:
    """The form of ``rule`` (None: a new one, sent once), on a copy: a refused edit leaves the page titled as stored."""
    form_class = AccessRuleForm if rule else NewAccessRuleForm
    return form_class(request.POST or None, instance=copy.copy(rule),
                      may_manage_scope=lambda scope: authz.has_permission(request.user, JIT_POLICY_WRITE, scope))


def _rule_edit(request: HttpRequest, rule: AccessRule | None) -> HttpResponse:
    form = _rule_form(request, rule)
    if request.method == "POST" and form.is_valid():
        try:
            # An edit carries the ``basis`` it was shown with (a post without one is taken as shown something else).
            saved, stored = approvals.access_rule_save(
                actor=request.user, rule=form.save(commit=False), client_ip=client_ip(request.META),
                token=form.cleaned_data.get("token", ""), shown=request.POST.get("basis", "") if rule else None)
        except approvals.RuleChanged as exc:  # another admin saved it since: the typed values stay
            rule = exc.current
            form.add_error(None, _rule_changed_text(form, exc))
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error(None, message)
        else:
            if not stored:  # a double submit, or the form sent again from the browser's history
                messages.info(request, f"This form was already sent: it made the access rule “{saved.name}”, and "
                                       "nothing new was saved. To add another rule, open New access rule again.")
                return redirect("policies:rule_edit", pk=saved.pk)
            messages.success(request, f"Saved access rule “{saved.name}”.")
            return redirect("policies:rules")
    return render(request, "policies/access/rule_form.html", {
        "title": f"Edit {rule.name}" if rule else "New access rule", "form": form, "rule": rule,
        "basis": approvals.rule_basis(rule) if rule else ""},
        status=400 if request.method == "POST" else 200)


def _rule_changed_text(form: AccessRuleForm, exc: approvals.RuleChanged) -> str:
    """What changed in the rule since its form was shown, with the values it holds now."""
    if exc.changed is None:
        said = (f"This form did not say which version of the access rule “{exc.current.name}” it was shown with, so "
                "saving it could replace a change made since.")
    else:
        now = approvals.rule_values(exc.current)
        said = (f"The access rule “{exc.current.name}” changed since you opened this page (another admin saved "
                "it): " + "; ".join(f"{form.fields[name].label} is now {form.value_text(name, now[name])}"
                                    for name in exc.changed) + ".")
    return said + " Your values are kept: check them and Save again to replace the rule as it is now."


@requires(JIT_POLICY_WRITE)
@require_http_methods(["GET", "HEAD", "POST"])
def rule_new(request: HttpRequest) -> HttpResponse:
    return _rule_edit(request, None)


@requires(JIT_POLICY_WRITE, object_model=AccessRule)
@require_http_methods(["GET", "HEAD", "POST"])
def rule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _rule_edit(request, selectors.rule_get(request.user, pk))


@requires(JIT_POLICY_WRITE, object_model=AccessRule)
@require_http_methods(["GET", "HEAD", "POST"])
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Confirm (GET) and delete (POST) an access rule."""
    rule = selectors.rule_get(request.user, pk)
    if request.method != "POST":
        return render(request, "generic/confirm.html", {
            "title": f"Delete access rule {rule.name}", "question": f"Delete the access rule “{rule.name}”?",
            "consequence": "New requests are no longer checked against it; pending requests keep the approvals "
                           "it asked for.", "confirm_label": "Yes, delete",
            "cancel_url": reverse("policies:rule_edit", args=[rule.pk]),
            "crumbs": [(reverse("settings"), "Settings"), (reverse("policies:rules"), "Access rules"),
                       (reverse("policies:rule_edit", args=[rule.pk]), rule.name)]})
    approvals.access_rule_delete(actor=request.user, rule=rule, client_ip=client_ip(request.META))
    messages.success(request, f"Deleted access rule “{rule.name}”.")
    return redirect("policies:rules")
