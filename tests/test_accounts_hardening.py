"""What the review of the accounts work found: revocations the socket must not
miss, races with password changes, errors that must stay JSON, origins of
other apps on the same host. Cast: alice signs in, bob is another user."""

import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from knox.models import AuthToken

from accounts import services
from accounts.models import User
from tests.messaging_helpers import api, direct
from tests.support.ws import open_socket

ROOT = Path(__file__).resolve().parents[1]


def connect(server, member):
    sock = open_socket(server.ws_url, token=member.token)
    sock.send({"type": "hello", "cursor": None})
    sock.expect("ready")
    return sock


@pytest.mark.django_db(transaction=True)
def test_a_bare_deactivation_closes_the_socket_at_the_next_check_and_refuses_sends(
    live_daphne, alice, bob
):
    conversation = direct(alice, bob)
    sock = connect(live_daphne, alice)
    User.objects.filter(pk=alice.id).update(is_active=False)  # no service, no event

    sock.send(
        {
            "type": "send",
            "conversation_id": conversation,
            "client_msg_id": "x",
            "text": "still here?",
        }
    )
    refused = sock.expect("error")
    time.sleep(1.1)  # the test settings check credentials every second
    sock.send({"type": "heartbeat"})

    assert refused["code"] == "conversation_not_found"
    assert sock.closed_with() == 4401


@pytest.mark.django_db(transaction=True)
def test_an_expired_token_closes_its_socket(live_daphne, alice):
    sock = connect(live_daphne, alice)
    AuthToken.objects.filter(user=alice.user).update(expiry=timezone.now())

    time.sleep(1.1)
    sock.send({"type": "heartbeat"})

    assert sock.closed_with() == 4401


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("ended", [None, "logged out", "password changed"])
def test_a_browser_socket_closes_at_the_next_check_when_its_session_ended_unannounced(
    live_daphne, alice, ended
):
    """The revocation event can be lost with Redis; the periodic check asks
    Django whether the browser's session still signs alice in."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.models import Session
    from django.test import Client

    browser = Client()
    browser.force_login(alice.user)
    session_key = browser.cookies["sessionid"].value
    sock = open_socket(
        live_daphne.ws_url, cookie=f"sessionid={session_key}", origin=live_daphne.url
    )
    sock.send({"type": "hello", "cursor": None})
    sock.expect("ready")
    # No service, no event:
    if ended == "logged out":
        Session.objects.filter(session_key=session_key).delete()
    elif ended == "password changed":
        User.objects.filter(pk=alice.id).update(password=make_password("another-secret-93"))

    time.sleep(1.1)  # the test settings check credentials every second
    sock.send({"type": "heartbeat"})

    if ended is None:
        with pytest.raises(TimeoutError):
            sock.conn.recv(timeout=1.5)  # nothing, and above all no close
        assert sock.conn.ping().wait(timeout=3)
        sock.close()
    else:
        assert sock.closed_with() == 4401


@pytest.mark.django_db
def test_the_socket_check_keeps_a_session_signed_with_a_rotated_secret_key(alice, settings):
    """During a SECRET_KEY rotation, sessions hashed with the old key stay
    signed in; the check must neither refuse them nor rewrite them (a new
    session key the browser never learns would sign it out)."""
    from django.contrib.sessions.models import Session
    from django.test import Client

    from accounts.ws_auth import session_valid

    browser = Client()
    browser.force_login(alice.user)
    session_key = browser.cookies["sessionid"].value
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40

    assert session_valid(user_id=alice.id, session_key=session_key)
    assert Session.objects.filter(session_key=session_key).exists()
    assert not session_valid(user_id=alice.id + 1, session_key=session_key)
    settings.SECRET_KEY_FALLBACKS = []
    assert not session_valid(user_id=alice.id, session_key=session_key)


@pytest.mark.django_db
def test_a_log_in_that_raced_a_password_change_gets_no_token(alice):
    seen_hash = alice.user.password  # what the log-in checked the password against
    services.user_password_set(user=alice.user, password="a-new-secret-47")

    with pytest.raises(services.CredentialsChanged):
        services.token_issue(user=alice.user, password_hash=seen_hash)
    assert not AuthToken.objects.filter(user=alice.user).exists()


@pytest.mark.django_db
def test_usernames_are_unique_ignoring_case_in_the_database(alice):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="ALICE")


@pytest.mark.django_db
def test_sign_up_normalises_full_width_letters(alice):
    response = api().post(
        "/api/v1/auth/register/",
        {"username": "\uff41\uff4c\uff49\uff43\uff45", "password": "another-long-pass-81"},
    )

    assert response.status_code == 409
    assert response.json()["code"] == "username_taken"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/nothing-here/"), ("post", "/api/v1/auth/token"), ("get", "/api/x")],
)
def test_unknown_api_paths_answer_json_even_with_debug_on(settings, client, method, path):
    settings.DEBUG = True

    response = getattr(client, method)(path)

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


@pytest.mark.django_db
def test_a_body_over_the_limit_is_a_413_not_a_500(settings, client):
    settings.DEBUG = True
    body = '{"username": "' + "a" * 3_000_000 + '", "password": "x"}'

    response = client.post("/api/v1/auth/token/", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


@pytest.mark.django_db
def test_a_refused_log_in_says_how_to_authenticate(alice):
    response = api().post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"})

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.django_db(transaction=True)
def test_a_page_on_another_port_of_our_host_cannot_use_the_cookie(live_daphne, alice):
    from django.test import Client

    browser = Client()
    browser.force_login(alice.user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    other_port = live_daphne.port + 1

    with pytest.raises(Exception, match="403"):
        open_socket(live_daphne.ws_url, cookie=cookie, origin=f"http://127.0.0.1:{other_port}")
    ours = open_socket(live_daphne.ws_url, cookie=cookie, origin=live_daphne.url)
    ours.send({"type": "hello", "cursor": None})
    assert ours.expect("ready")["type"] == "ready"
    ours.close()


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "chatproject.settings", **env},
        capture_output=True,
        text=True,
    )


def test_a_malformed_rate_stops_the_server_at_start():
    result = _manage("check", THROTTLE_USER="lots")

    assert result.returncode != 0
    assert "THROTTLE_USER='lots' is not a rate" in result.stderr


def test_demo_logins_are_never_seeded_with_debug_off():
    result = _manage("seed_demo", DEBUG="0", SECRET_KEY="s" * 50, DATABASE_URL="sqlite:///:memory:")

    assert result.returncode != 0
    assert "only with DEBUG=1" in result.stderr


@pytest.mark.django_db
def test_reactivating_a_user_does_not_revive_their_old_browser_sessions(alice):
    from django.test import Client

    browser = Client()
    browser.force_login(alice.user)
    assert browser.get("/api/v1/me/").status_code == 200

    services.user_deactivate(user=alice.user)
    User.objects.filter(pk=alice.id).update(is_active=True)

    assert browser.get("/api/v1/me/").status_code == 401
    fresh = Client()
    fresh.force_login(User.objects.get(pk=alice.id))
    assert fresh.get("/api/v1/me/").status_code == 200


@pytest.mark.django_db
def test_a_staff_members_own_password_change_in_the_admin_revokes_their_tokens(make_member):
    from django.test import Client

    mod = make_member("mod", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(mod.user)

    response = browser.post(
        "/admin/password_change/",
        {
            "old_password": mod.password,
            "new_password1": "fresh-admin-pass-63",
            "new_password2": "fresh-admin-pass-63",
        },
    )

    assert response.status_code == 302
    assert not AuthToken.objects.filter(user=mod.user).exists()
    assert api(mod).get("/api/v1/me/").status_code == 401
    assert browser.get("/admin/").status_code == 200  # this session is kept


@pytest.mark.django_db
def test_the_sockets_one_statement_check_agrees_with_the_orm_checks(alice, bob):
    """A socket's periodic check (one SQL statement) must say exactly what the
    ORM checks say, in every state a credential and an inbox can be in."""
    from accounts.ws_auth import credentials_valid
    from messaging.inbox import head_if_credentials_valid, inbox_head
    from messaging.models import Inbox

    token_key = AuthToken.objects.get(user=alice.user).token_key

    def both(user_id, key):
        valid = credentials_valid(user_id=user_id, token_key=key)
        orm = inbox_head(user_id=user_id) if valid else None
        return head_if_credentials_valid(user_id=user_id, token_key=key), orm

    seen = []
    Inbox.objects.filter(user_id=alice.id).delete()
    seen.append(both(alice.id, token_key))  # no inbox row yet: head 0
    Inbox.objects.create(user_id=alice.id, last_seq=41)
    seen.append(both(alice.id, token_key))
    seen.append(both(alice.id, None))  # a browser's socket: no token to check
    seen.append(both(alice.id, "no-such-key"))
    seen.append(both(bob.id, token_key))  # alice's token is not bob's
    AuthToken.objects.filter(token_key=token_key).update(expiry=None)
    seen.append(both(alice.id, token_key))
    AuthToken.objects.filter(token_key=token_key).update(
        expiry=timezone.now() - datetime.timedelta(seconds=1)
    )
    seen.append(both(alice.id, token_key))
    AuthToken.objects.filter(token_key=token_key).update(
        expiry=timezone.now() + datetime.timedelta(hours=1)
    )
    User.objects.filter(pk=alice.id).update(is_active=False)
    seen.append(both(alice.id, token_key))
    seen.append(both(alice.id, None))
    seen.append(both(999_999, None))  # a deleted user

    assert [one for one, _ in seen] == [orm for _, orm in seen]
    assert [one for one, _ in seen] == [0, 41, 41, None, None, 41, None, None, None, None]
