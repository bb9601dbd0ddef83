"""WebSocket authentication against a real daphne: handshake rules and revocation.

Credentials are checked at the handshake; afterwards only the `auth.revoked`
event closes a socket (4401). These tests open real sockets on `live_daphne`
and revoke through the same HTTP views and admin a user or moderator would use.
"""

import time

import pytest
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus

from accounts import services
from accounts.models import User
from tests.accounts_fixtures import bearer, call
from tests.messaging_helpers import direct, send
from tests.support.ws import Socket, open_socket

CLOSE_UNAUTHENTICATED = 4401
STRONG = "tangerine-lighthouse-42"

pytestmark = pytest.mark.django_db(transaction=True)


def origin_of(server) -> str:
    return server.url  # http://127.0.0.1:<port>: a host in ALLOWED_HOSTS


def browser_for(member) -> tuple[Client, str]:
    """A signed-in browser and the Cookie header its socket would send."""
    browser = Client()
    browser.force_login(member.user)
    return browser, f"sessionid={browser.cookies['sessionid'].value}"


def is_open(sock: Socket) -> bool:
    """Answers a protocol-level ping: open, whatever the chat protocol does."""
    try:
        return sock.conn.ping().wait(timeout=3)
    except ConnectionClosed:
        return False


def settle() -> None:
    # Revocation reaches every socket of the process through one group_send; once
    # the targeted socket has closed, a wrongly targeted one would have too.
    time.sleep(0.3)


# --- handshake ---------------------------------------------------------------------


def test_a_bearer_header_authenticates_a_mobile_client(live_daphne, alice):
    with open_socket(live_daphne.ws_url, token=alice.token) as sock:
        assert is_open(sock)


def test_the_subprotocol_fallback_authenticates_and_chat_v1_is_selected(live_daphne, alice):
    with open_socket(live_daphne.ws_url, subprotocols=["chat.v1", f"bearer.{alice.token}"]) as sock:
        assert sock.conn.subprotocol == "chat.v1"
        assert is_open(sock)


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"token": "not-a-token"},
        {"subprotocols": ["chat.v1", "bearer.not-a-token"]},
    ],
)
def test_a_missing_or_bad_token_is_closed_with_4401(live_daphne, credentials):
    with open_socket(live_daphne.ws_url, **credentials) as sock:
        assert sock.closed_with() == CLOSE_UNAUTHENTICATED


def test_a_session_cookie_without_origin_is_not_enough(live_daphne, alice):
    _, cookie = browser_for(alice)

    # No Origin: not a browser, so the cookie must not authenticate it.
    with open_socket(live_daphne.ws_url, cookie=cookie) as sock:
        assert sock.closed_with() == CLOSE_UNAUTHENTICATED


def test_our_origin_with_a_session_cookie_is_accepted(live_daphne, alice):
    _, cookie = browser_for(alice)

    with open_socket(live_daphne.ws_url, cookie=cookie, origin=origin_of(live_daphne)) as sock:
        assert is_open(sock)


@pytest.mark.parametrize("with_token", [False, True])
def test_a_foreign_origin_is_refused_at_the_handshake(live_daphne, alice, with_token):
    _, cookie = browser_for(alice)
    token = alice.token if with_token else None

    with pytest.raises(InvalidStatus) as refused:
        open_socket(
            live_daphne.ws_url, cookie=cookie, token=token, origin="https://evil.example.com"
        )

    assert refused.value.response.status_code == 403


def test_a_deactivated_users_token_is_refused(live_daphne, alice):
    services.user_deactivate(user=alice.user)

    with open_socket(live_daphne.ws_url, token=alice.token) as sock:
        assert sock.closed_with() == CLOSE_UNAUTHENTICATED


# --- revocation of open sockets ------------------------------------------------------------


def test_deactivation_by_a_moderator_closes_every_open_socket_at_once(
    live_daphne, make_member, alice, bob
):
    moderator = Client()
    moderator.force_login(make_member("mod", is_staff=True, is_superuser=True).user)
    _, cookie = browser_for(alice)
    phone = open_socket(live_daphne.ws_url, token=alice.token)
    web = open_socket(live_daphne.ws_url, cookie=cookie, origin=origin_of(live_daphne))
    bystander = open_socket(live_daphne.ws_url, token=bob.token)

    moderator.post(
        "/admin/accounts/user/",
        {"action": "deactivate_users", "_selected_action": [alice.id]},
    )

    assert phone.closed_with() == CLOSE_UNAUTHENTICATED
    assert web.closed_with() == CLOSE_UNAUTHENTICATED
    settle()
    assert is_open(bystander)
    assert call(Client(), "get", "/api/v1/me/", **alice.auth).status_code == 401
    for sock in (phone, web, bystander):
        sock.close()


def test_api_logout_closes_only_the_socket_of_that_token(live_daphne, alice):
    _, tablet_token = services.token_issue(user=alice.user)
    phone = open_socket(live_daphne.ws_url, token=alice.token)
    tablet = open_socket(live_daphne.ws_url, subprotocols=["chat.v1", f"bearer.{tablet_token}"])

    response = call(Client(), "post", "/api/v1/auth/logout/", **alice.auth)

    assert response.status_code == 204
    assert phone.closed_with() == CLOSE_UNAUTHENTICATED
    settle()
    assert is_open(tablet)
    phone.close()
    tablet.close()


def test_browser_logout_closes_only_the_socket_of_that_session(live_daphne, alice):
    laptop, laptop_cookie = browser_for(alice)
    _, desktop_cookie = browser_for(alice)
    origin = origin_of(live_daphne)
    laptop_socket = open_socket(live_daphne.ws_url, cookie=laptop_cookie, origin=origin)
    desktop_socket = open_socket(live_daphne.ws_url, cookie=desktop_cookie, origin=origin)
    phone = open_socket(live_daphne.ws_url, token=alice.token)

    laptop.post("/logout/")

    assert laptop_socket.closed_with() == CLOSE_UNAUTHENTICATED
    settle()
    assert is_open(desktop_socket)
    assert is_open(phone)
    for sock in (laptop_socket, desktop_socket, phone):
        sock.close()


def test_password_change_closes_every_socket_and_the_new_password_works(live_daphne, alice):
    laptop, laptop_cookie = browser_for(alice)
    _, tablet_token = services.token_issue(user=alice.user)
    sockets = [
        open_socket(live_daphne.ws_url, token=alice.token),
        open_socket(live_daphne.ws_url, token=tablet_token),
        open_socket(live_daphne.ws_url, cookie=laptop_cookie, origin=origin_of(live_daphne)),
    ]

    laptop.post(
        "/account/password/",
        {"old_password": alice.password, "new_password1": STRONG, "new_password2": STRONG},
    )

    assert [sock.closed_with() for sock in sockets] == [CLOSE_UNAUTHENTICATED] * 3
    # The browser that changed it stays signed in and may reconnect; the apps may not.
    laptop_cookie = f"sessionid={laptop.cookies['sessionid'].value}"
    with open_socket(
        live_daphne.ws_url, cookie=laptop_cookie, origin=origin_of(live_daphne)
    ) as again:
        assert is_open(again)
    with open_socket(live_daphne.ws_url, token=tablet_token) as stale:
        assert stale.closed_with() == CLOSE_UNAUTHENTICATED
    fresh = call(Client(), "post", "/api/v1/auth/token/", {"username": "alice", "password": STRONG})
    with open_socket(live_daphne.ws_url, **{"token": fresh.json()["access"]}) as sock:
        assert is_open(sock)
    assert call(Client(), "get", "/api/v1/me/", **bearer(tablet_token)).status_code == 401
    for sock in sockets:
        sock.close()


def test_signing_out_of_all_apps_closes_token_sockets_but_not_the_browsers(live_daphne, alice):
    laptop, laptop_cookie = browser_for(alice)
    _, tablet_token = services.token_issue(user=alice.user)
    phone = open_socket(live_daphne.ws_url, token=alice.token)
    tablet = open_socket(live_daphne.ws_url, token=tablet_token)
    web = open_socket(live_daphne.ws_url, cookie=laptop_cookie, origin=origin_of(live_daphne))

    laptop.post("/account/sign-out-apps/")

    assert phone.closed_with() == CLOSE_UNAUTHENTICATED
    assert tablet.closed_with() == CLOSE_UNAUTHENTICATED
    settle()
    assert is_open(web)
    for sock in (phone, tablet, web):
        sock.close()


def test_deleting_the_account_in_the_admin_closes_its_sockets(live_daphne, make_member, alice):
    moderator = Client()
    moderator.force_login(make_member("mod", is_staff=True, is_superuser=True).user)
    phone = open_socket(live_daphne.ws_url, token=alice.token)

    moderator.post(f"/admin/accounts/user/{alice.id}/delete/", {"post": "yes"})

    assert phone.closed_with() == CLOSE_UNAUTHENTICATED
    phone.close()


def test_someone_who_has_chatted_is_deactivated_not_deleted(make_member, alice, bob):
    """Their messages stay in others' history: the admin says to deactivate,
    instead of Django's "no permission to delete membership"."""
    moderator = Client()
    moderator.force_login(make_member("mod", is_staff=True, is_superuser=True).user)
    send(alice, direct(alice, bob), "still here")

    page = moderator.get(f"/admin/accounts/user/{alice.id}/delete/").content.decode()
    moderator.post(f"/admin/accounts/user/{alice.id}/delete/", {"post": "yes"})

    assert "deactivate the account instead" in page
    assert "permission to delete" not in page
    assert User.objects.filter(pk=alice.id, is_active=True).exists()
