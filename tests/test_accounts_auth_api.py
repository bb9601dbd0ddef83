"""REST authentication: sign-up, tokens, log-out, password change, deactivation."""

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from knox.models import AuthToken

from accounts import services
from tests import accounts_fixtures
from tests.accounts_fixtures import assert_error, bearer, call, tokens_of

deactivated = accounts_fixtures.deactivated

User = get_user_model()
REGISTER = "/api/v1/auth/register/"
TOKEN = "/api/v1/auth/token/"
LOGOUT = "/api/v1/auth/logout/"
LOGOUT_ALL = "/api/v1/auth/logout-all/"
PASSWORD = "/api/v1/auth/password/"
ME = "/api/v1/me/"
STRONG = "tangerine-lighthouse-42"


# --- register ---------------------------------------------------------------


@pytest.mark.django_db
def test_register_creates_the_account_and_answers_a_working_token(client):
    response = call(
        client, "post", REGISTER, {"username": "erin", "password": STRONG, "display_name": " Erin "}
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"access", "expiry", "user"}
    assert body["user"]["username"] == "erin"
    assert body["user"]["display_name"] == "Erin"
    assert body["user"]["time_zone"] == "UTC"
    assert body["expiry"] is not None
    user = User.objects.get(username="erin")
    assert user.check_password(STRONG)
    me = call(client, "get", ME, **bearer(body["access"]))
    assert me.status_code == 200
    assert me.json()["id"] == user.pk


@pytest.mark.django_db
def test_register_without_display_name_is_fine(client):
    response = call(client, "post", REGISTER, {"username": "fay", "password": STRONG})

    assert response.status_code == 201
    assert response.json()["user"]["display_name"] == ""


@pytest.mark.django_db
def test_register_refuses_a_weak_password_at_the_password_field(client):
    response = call(client, "post", REGISTER, {"username": "erin", "password": "12345678"})

    body = assert_error(response, 400, "invalid")
    assert "password" in body["fields"]
    assert any("common" in message for message in body["fields"]["password"])
    assert not User.objects.filter(username="erin").exists()


@pytest.mark.django_db
def test_register_refuses_a_password_like_the_username(client):
    response = call(
        client, "post", REGISTER, {"username": "lighthouse99", "password": "lighthouse99"}
    )

    body = assert_error(response, 400, "invalid")
    assert any("similar" in message for message in body["fields"]["password"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": STRONG}, "username"),
        ({"username": "erin"}, "password"),
        ({"username": "no spaces", "password": STRONG}, "username"),
        ({"username": "x" * 151, "password": STRONG}, "username"),
        ({"username": "erin", "password": STRONG, "display_name": "d" * 65}, "display_name"),
        ({"username": "nul\x00l", "password": STRONG}, "username"),
    ],
)
def test_register_validates_each_field(client, payload, field):
    response = call(client, "post", REGISTER, payload)

    body = assert_error(response, 400, "invalid")
    assert field in body["fields"]
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_register_refuses_a_taken_username_in_any_case(client, alice):
    response = call(client, "post", REGISTER, {"username": "ALICE", "password": STRONG})

    assert_error(response, 409, "username_taken")
    assert User.objects.filter(username__iexact="alice").count() == 1


@pytest.mark.django_db
def test_register_refuses_malformed_json(client):
    response = client.post(REGISTER, data="{not json", content_type="application/json")

    assert_error(response, 400, "parse_error")


# --- token (log-in) ----------------------------------------------------------------


@pytest.mark.django_db
def test_token_signs_a_device_in_with_its_own_token(client, alice):
    response = call(client, "post", TOKEN, {"username": "alice", "password": alice.password})

    assert response.status_code == 200
    body = response.json()
    assert body["user"]["username"] == "alice"
    assert body["access"] != alice.token
    # One token per device: the first device's token still works.
    assert tokens_of(alice.user) == 2
    assert call(client, "get", ME, **alice.auth).status_code == 200
    assert call(client, "get", ME, **bearer(body["access"])).status_code == 200


@pytest.mark.django_db
def test_token_refuses_a_wrong_password_and_an_unknown_user_alike(client, alice):
    wrong = call(client, "post", TOKEN, {"username": "alice", "password": "nope-nope-nope"})
    unknown = call(client, "post", TOKEN, {"username": "zed", "password": "nope-nope-nope"})

    assert assert_error(wrong, 401, "invalid_credentials") == assert_error(
        unknown, 401, "invalid_credentials"
    )
    assert tokens_of(alice.user) == 1


@pytest.mark.django_db
def test_token_refuses_a_deactivated_user_with_the_right_password(client, deactivated):
    response = call(client, "post", TOKEN, {"username": "dave", "password": deactivated.password})

    assert_error(response, 401, "invalid_credentials")
    assert tokens_of(deactivated.user) == 0


@pytest.mark.django_db
def test_token_validates_its_input(client):
    response = call(client, "post", TOKEN, {"username": "alice"})

    body = assert_error(response, 400, "invalid")
    assert body["fields"] == {"password": ["This field is required."]}


@pytest.mark.django_db
def test_password_is_not_trimmed(client, make_member):
    spaced = make_member("spacey")
    spaced.user.set_password("  spaced out pass  ")
    spaced.user.save()

    trimmed = call(client, "post", TOKEN, {"username": "spacey", "password": "spaced out pass"})
    exact = call(client, "post", TOKEN, {"username": "spacey", "password": "  spaced out pass  "})

    assert trimmed.status_code == 401
    assert exact.status_code == 200


# --- authentication on any endpoint -------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "not_authenticated"),
        ({"HTTP_AUTHORIZATION": "Bearer"}, "authentication_failed"),
        ({"HTTP_AUTHORIZATION": "Bearer not-a-real-token"}, "authentication_failed"),
        ({"HTTP_AUTHORIZATION": "Bearer a b"}, "authentication_failed"),
        ({"HTTP_AUTHORIZATION": "Bearer caf\xe9"}, "authentication_failed"),
    ],
)
def test_requests_without_a_valid_token_get_401(client, headers, code):
    response = call(client, "get", ME, **headers)

    assert_error(response, 401, code)
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.django_db
def test_a_deactivated_users_token_stops_working_at_once(client, alice):
    assert call(client, "get", ME, **alice.auth).status_code == 200

    # Even a bare UPDATE (no service, no event) is enough for REST: knox checks is_active.
    User.objects.filter(pk=alice.id).update(is_active=False)

    assert_error(call(client, "get", ME, **alice.auth), 401, "authentication_failed")


@pytest.mark.django_db
def test_deactivation_deletes_the_tokens_so_reactivation_does_not_revive_them(client, alice):
    services.user_deactivate(user=alice.user)
    User.objects.filter(pk=alice.id).update(is_active=True)

    assert tokens_of(alice.user) == 0
    assert_error(call(client, "get", ME, **alice.auth), 401, "authentication_failed")


# --- log-out -------------------------------------------------------------------------


@pytest.mark.django_db
def test_logout_revokes_only_the_calling_token(client, alice):
    _, other_device = services.token_issue(user=alice.user)

    response = call(client, "post", LOGOUT, **alice.auth)

    assert response.status_code == 204
    assert_error(call(client, "get", ME, **alice.auth), 401, "authentication_failed")
    assert call(client, "get", ME, **bearer(other_device)).status_code == 200


@pytest.mark.django_db
def test_logout_needs_a_token(client, alice):
    assert_error(call(client, "post", LOGOUT), 401, "not_authenticated")
    # A browser session is not a token: it logs out on the web page.
    client.force_login(alice.user)
    assert_error(call(client, "post", LOGOUT), 401, "not_authenticated")
    assert tokens_of(alice.user) == 1


@pytest.mark.django_db
def test_logout_all_revokes_every_token_of_the_user_only(client, alice, bob):
    _, other_device = services.token_issue(user=alice.user)

    response = call(client, "post", LOGOUT_ALL, **alice.auth)

    assert response.status_code == 204
    assert tokens_of(alice.user) == 0
    assert call(client, "get", ME, **bearer(other_device)).status_code == 401
    assert call(client, "get", ME, **bob.auth).status_code == 200


@pytest.mark.django_db
def test_logout_all_refuses_anonymous(client):
    assert_error(call(client, "post", LOGOUT_ALL), 401, "not_authenticated")


@pytest.mark.django_db(transaction=True)
def test_logout_tells_the_sockets_of_that_token_after_commit(alice, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "accounts.services.send_to_users_on_commit",
        lambda user_ids, message: transaction.on_commit(lambda: sent.append((user_ids, message))),
    )
    token = AuthToken.objects.get(user=alice.user)

    services.token_revoke(token=token)

    assert sent == [
        ([alice.id], {"type": "auth.revoked", "token_key": token.token_key, "session_key": None})
    ]


# --- password change over the API -----------------------------------------------------


@pytest.mark.django_db
def test_password_change_revokes_every_token_and_answers_a_new_one(client, alice):
    _, other_device = services.token_issue(user=alice.user)

    response = call(
        client,
        "post",
        PASSWORD,
        {"current_password": alice.password, "new_password": STRONG},
        **alice.auth,
    )

    assert response.status_code == 200, response.content
    new_token = response.json()["access"]
    assert call(client, "get", ME, **alice.auth).status_code == 401
    assert call(client, "get", ME, **bearer(other_device)).status_code == 401
    assert call(client, "get", ME, **bearer(new_token)).status_code == 200
    assert tokens_of(alice.user) == 1
    alice.user.refresh_from_db()
    assert alice.user.check_password(STRONG)


@pytest.mark.django_db
def test_password_change_needs_the_current_password(client, alice):
    response = call(
        client,
        "post",
        PASSWORD,
        {"current_password": "guess-guess-guess", "new_password": STRONG},
        **alice.auth,
    )

    body = assert_error(response, 400, "invalid")
    assert list(body["fields"]) == ["current_password"]
    assert call(client, "get", ME, **alice.auth).status_code == 200
    alice.user.refresh_from_db()
    assert alice.user.check_password(alice.password)


@pytest.mark.django_db
def test_password_change_refuses_a_weak_new_password(client, alice):
    response = call(
        client,
        "post",
        PASSWORD,
        {"current_password": alice.password, "new_password": "password"},
        **alice.auth,
    )

    body = assert_error(response, 400, "invalid")
    assert list(body["fields"]) == ["new_password"]
    assert tokens_of(alice.user) == 1


@pytest.mark.django_db
def test_password_change_refuses_anonymous(client):
    response = call(client, "post", PASSWORD, {"current_password": "a", "new_password": STRONG})

    assert_error(response, 401, "not_authenticated")
