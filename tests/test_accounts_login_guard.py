"""Log-in tries are limited per account, from every address and every way in."""

import time
from types import SimpleNamespace

import pytest
from django.core.cache import cache

from accounts import login_guard
from tests.accounts_fixtures import assert_error, call

TOKEN = "/api/v1/auth/token/"
ME = "/api/v1/me/"


@pytest.fixture
def three_failures(settings):
    settings.THROTTLE_LOGIN_FAILURES = "3/hour"
    for name in ("alice", "nobody-here"):
        cache.delete_many(list(login_guard._keys(name)))


def token_attempt(client, username: str, password: str, octet: int):
    return call(
        client,
        "post",
        TOKEN,
        {"username": username, "password": password},
        REMOTE_ADDR=f"198.51.100.{octet}",
    )


@pytest.mark.django_db
def test_failed_log_ins_from_many_addresses_lock_the_account(client, alice, bob, three_failures):
    failures = [token_attempt(client, "alice", "wrong", octet).status_code for octet in (1, 2, 3)]

    # The right password, from a fourth address: refused too.
    locked = token_attempt(client, "alice", alice.password, 4)

    assert failures == [401, 401, 401]
    body = assert_error(locked, 429, "throttled")
    assert "this account" in body["detail"]
    assert 3000 <= int(locked.headers["Retry-After"]) <= 3600
    # Another account from the same address, and alice's signed-in device, are unaffected.
    assert token_attempt(client, "bob", bob.password, 4).status_code == 200
    assert call(client, "get", ME, **alice.auth).status_code == 200


@pytest.mark.django_db
def test_an_unknown_username_is_answered_like_a_real_one(client, alice, three_failures):
    """Nobody learns which usernames exist from when the lock starts."""
    real = [token_attempt(client, "alice", "wrong", 10).status_code for _ in range(4)]
    unknown = [token_attempt(client, "nobody-here", "wrong", 11).status_code for _ in range(4)]

    assert real == unknown == [401, 401, 401, 429]


@pytest.mark.django_db
def test_web_admin_and_api_failures_count_together_and_each_is_refused(
    client, alice, three_failures
):
    addresses = iter(f"192.0.2.{n}" for n in range(1, 20))
    client.post("/login/", {"username": "alice", "password": "x"}, REMOTE_ADDR=next(addresses))
    client.post(
        "/admin/login/", {"username": "Alice", "password": "x"}, REMOTE_ADDR=next(addresses)
    )
    assert token_attempt(client, "alice", "x", 30).status_code == 401

    api = token_attempt(client, "alice", alice.password, 31)
    web = client.post(
        "/login/", {"username": "alice", "password": alice.password}, REMOTE_ADDR=next(addresses)
    )
    admin = client.post(
        "/admin/login/",
        {"username": "alice", "password": alice.password},
        REMOTE_ADDR=next(addresses),
    )

    assert_error(api, 429, "throttled")
    for page in (web, admin):
        assert page.status_code == 429
        assert int(page.headers["Retry-After"]) >= 1
        assert b"Too many failed log-ins to this account" in page.content
        assert b"Please wait about 1 hour" in page.content  # not "3593 seconds"
    assert "_auth_user_id" not in client.session
    # Reading the page is not an attempt.
    assert client.get("/login/", REMOTE_ADDR=next(addresses)).status_code == 200


@pytest.mark.django_db
def test_a_padded_or_recased_username_is_the_same_locked_account(client, alice, three_failures):
    """The pages strip the username before checking the password: the lock must too."""
    for octet in (50, 51, 52):
        token_attempt(client, "alice", "wrong", octet)

    web = client.post(
        "/login/", {"username": "  alice ", "password": alice.password}, REMOTE_ADDR="192.0.2.53"
    )
    admin = client.post(
        "/admin/login/", {"username": " ALICE", "password": "x"}, REMOTE_ADDR="192.0.2.54"
    )
    api = token_attempt(client, "Alice", alice.password, 55)

    assert web.status_code == admin.status_code == 429
    assert_error(api, 429, "throttled")
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_names_that_differ_only_by_unicode_folding_are_not_locked_together(
    client, make_member, three_failures
):
    """Usernames are unique ignoring case (lower()): "strasse" and "straße" are
    two accounts, and guesses at one must not lock the other out."""
    strasse = make_member("strasse")
    cache.delete_many(list(login_guard._keys("straße")) + list(login_guard._keys("strasse")))
    for octet in (80, 81, 82, 83):
        token_attempt(client, "straße", "wrong", octet)

    assert token_attempt(client, "straße", "wrong", 84).status_code == 429
    assert token_attempt(client, "strasse", strasse.password, 85).status_code == 200


@pytest.mark.django_db
def test_successful_log_ins_give_their_try_back(client, alice, three_failures):
    """The owner signing in on many devices is never locked out by it."""
    apps = [token_attempt(client, "alice", alice.password, 60).status_code for _ in range(4)]
    web = client.post(
        "/login/", {"username": "alice", "password": alice.password}, REMOTE_ADDR="192.0.2.61"
    )
    client.logout()
    guesses = [token_attempt(client, "alice", "wrong", 62).status_code for _ in range(2)]
    still_in = token_attempt(client, "alice", alice.password, 63).status_code
    third_guess = token_attempt(client, "alice", "wrong", 64).status_code
    locked = token_attempt(client, "alice", alice.password, 65).status_code

    assert apps == [200, 200, 200, 200]
    assert web.status_code == 302
    assert guesses == [401, 401] and still_in == 200 and third_guess == 401
    assert locked == 429
    # An app's log-in is recorded like a page's (moderators see it in the admin).
    alice.user.refresh_from_db()
    assert alice.user.last_login is not None


@pytest.mark.django_db
def test_tries_still_in_flight_count(client, alice, three_failures):
    """Guesses sent together cannot all pass a check made before any had failed:
    each takes its try before its password is checked."""
    # Two slow guesses, still checking their passwords.
    in_flight = [login_guard.attempt(SimpleNamespace(), "alice") for _ in range(2)]

    third = token_attempt(client, "alice", "wrong", 70)
    fourth = token_attempt(client, "alice", alice.password, 71)

    assert in_flight == [None, None]
    assert third.status_code == 401
    assert_error(fourth, 429, "throttled")


@pytest.mark.django_db
def test_the_lock_ends_with_its_window(client, alice, settings):
    settings.THROTTLE_LOGIN_FAILURES = "2/s"
    cache.delete_many(list(login_guard._keys("alice")))
    token_attempt(client, "alice", "wrong", 40)
    token_attempt(client, "alice", "wrong", 40)
    assert token_attempt(client, "alice", alice.password, 40).status_code == 429

    time.sleep(1.2)

    assert token_attempt(client, "alice", alice.password, 40).status_code == 200


@pytest.mark.django_db
def test_the_admin_log_in_page_is_limited_per_address_too(client, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"auth": "2/min", "user": "100/min"},
    }
    address = "203.0.113.77"
    cache.delete(f"throttle_auth_{address}")

    answers = [
        client.post(
            "/admin/login/", {"username": f"guess{n}", "password": "x"}, REMOTE_ADDR=address
        ).status_code
        for n in range(3)
    ]

    assert answers == [200, 200, 429]


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["/account/password/", "/admin/password_change/"])
def test_password_change_pages_are_limited_per_address(client, make_member, settings, page):
    """Someone holding a stolen session cookie cannot guess the current password freely."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"auth": "2/min", "user": "100/min"},
    }
    address = "203.0.113.78"
    cache.delete(f"throttle_auth_{address}")
    moderator = make_member("mod", is_staff=True)
    client.force_login(moderator.user)
    guess = {
        "old_password": "guess",
        "new_password1": "N3w-pass-phrase",
        "new_password2": "N3w-pass-phrase",
    }

    answers = [client.post(page, guess, REMOTE_ADDR=address).status_code for _ in range(3)]

    assert answers == [200, 200, 429]
    moderator.user.refresh_from_db()
    assert moderator.user.check_password(moderator.password)
