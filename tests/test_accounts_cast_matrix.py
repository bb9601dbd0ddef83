"""The authorisation matrix over every authenticated endpoint: a deactivated
user's token is refused everywhere, and a browser session without its CSRF
token cannot write anywhere. (Per-endpoint success and validation paths are in
the other test modules.)"""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from tests.messaging_helpers import direct

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/api/v1/me/", None),
    ("patch", "/api/v1/me/", {"display_name": "x"}),
    ("get", "/api/v1/users/?search=a", None),
    ("post", "/api/v1/auth/logout/", None),
    ("post", "/api/v1/auth/logout-all/", None),
    ("post", "/api/v1/auth/password/", {"current_password": "p", "new_password": "q"}),
    ("get", "/api/v1/devices/", None),
    ("post", "/api/v1/devices/", {"platform": "android", "token": "t"}),
    ("post", "/api/v1/devices/unregister/", {"token": "t"}),
    ("delete", "/api/v1/devices/1/", None),
    ("get", "/api/v1/conversations/", None),
    ("post", "/api/v1/conversations/", {"kind": "direct", "user_id": 1}),
    ("get", "/api/v1/conversations/{c}/", None),
    ("get", "/api/v1/conversations/{c}/messages/", None),
    ("post", "/api/v1/conversations/{c}/messages/", {"client_msg_id": "a", "text": "b"}),
    ("post", "/api/v1/conversations/{c}/read/", {"seq": 0}),
    ("get", "/api/v1/sync/?cursor=0", None),
    ("get", "/api/v1/presence/?user_ids=1", None),
    ("get", "/api/v1/chat-server/", None),
]
WRITES = [e for e in ENDPOINTS if e[0] != "get" and "auth/" not in e[1]]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_a_deactivated_users_token_is_refused_everywhere(alice, bob, method, path, body):
    conversation = direct(alice, bob)
    User.objects.filter(pk=alice.id).update(is_active=False)  # a bare update: no service
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice.token}")

    response = getattr(client, method)(path.format(c=conversation), body, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_browser_session_cannot_write_without_its_csrf_token(alice, bob, method, path, body):
    conversation = direct(alice, bob)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice.user)

    response = getattr(browser, method)(
        path.format(c=conversation), body, content_type="application/json"
    )

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert "CSRF" in response.json()["detail"]
