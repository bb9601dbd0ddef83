"""Helpers and fixtures for the accounts tests (owned by the accounts work)."""

import json
from typing import Any

import pytest
from django.test import Client
from knox.models import AuthToken

from accounts import services


def call(client: Client, method: str, url: str, body: Any = None, **extra: Any) -> Any:
    """A JSON request; the response with .json() available for every status."""
    kwargs: dict[str, Any] = dict(extra)
    if body is not None:
        kwargs["data"] = json.dumps(body)
        kwargs["content_type"] = "application/json"
    return getattr(client, method.lower())(url, **kwargs)


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def assert_error(response: Any, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def tokens_of(user: Any) -> int:
    return AuthToken.objects.filter(user=user).count()


@pytest.fixture
def deactivated(make_member):
    """Dave had an account and a token; a moderator deactivated him."""
    dave = make_member("dave", display_name="Dave D.")
    services.user_deactivate(user=dave.user)
    return dave
