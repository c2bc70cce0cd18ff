"""Factories for the authorization matrix: a personal API token (of its own user, so nobody else may touch it)."""
from __future__ import annotations

import itertools

from django.contrib.auth import get_user_model

from api.models import ApiToken
from api.services import token_create

_numbers = itertools.count(1)


def make_token(scope: str) -> ApiToken:
    """An active token of a new user; a token has no scope (only its owner may see or revoke it)."""
    owner = get_user_model().objects.create_user(username=f"token-owner-{next(_numbers)}")
    return token_create(actor=owner, name="matrix token").token


MATRIX_FACTORIES = {ApiToken: make_token}
