"""The access request's database constraints: what every writer must hold to, whichever path it takes."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from policies.access.models import AccessRequest, ApprovalState, PortState
from tests.plugins.personas import IN_SCOPE
from tests.policies.access.factories import make_access_request

pytestmark = pytest.mark.django_db


def test_a_pending_request_without_an_approval_deadline_is_refused_by_the_database():
    request = make_access_request(IN_SCOPE)
    with pytest.raises(IntegrityError), transaction.atomic():
        AccessRequest.objects.filter(pk=request.pk).update(state=PortState.PENDING,
                                                           approval_state=ApprovalState.PENDING)
    # With its deadline it is stored; once decided, the deadline may go (any state but pending needs none).
    deadline = timezone.now() + timedelta(hours=1)
    AccessRequest.objects.filter(pk=request.pk).update(approval_state=ApprovalState.PENDING,
                                                       approval_expires_at=deadline)
    AccessRequest.objects.filter(pk=request.pk).update(approval_state=ApprovalState.DENIED, approval_expires_at=None)
    assert AccessRequest.objects.get(pk=request.pk).approval_expires_at is None
