"""REST profile (`me/`) and the user directory (`users/`)."""

import pytest
from django.contrib.auth import get_user_model

from tests import accounts_fixtures
from tests.accounts_fixtures import assert_error, call

deactivated = accounts_fixtures.deactivated

User = get_user_model()
ME = "/api/v1/me/"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
USERS = "/api/v1/users/"


# --- me ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_me_shows_the_callers_own_profile_and_nothing_private(client, alice):
    User.objects.filter(pk=alice.id).update(email="alice@example.com", is_staff=True)

    response = call(client, "get", ME, **alice.auth)

    assert response.status_code == 200
    assert response.json() == {
        "id": alice.id,
        "username": "alice",
        "display_name": "Alice A.",
        "avatar_url": None,
        "time_zone": "UTC",
        "last_active_at": None,
    }


@pytest.mark.django_db
def test_me_works_with_a_browser_session_too(client, alice):
    client.force_login(alice.user)

    assert call(client, "get", ME).json()["username"] == "alice"


@pytest.mark.django_db
def test_me_refuses_anonymous_and_deactivated(client, deactivated):
    assert_error(call(client, "get", ME), 401, "not_authenticated")
    assert_error(call(client, "get", ME, **deactivated.auth), 401, "authentication_failed")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("\u202eeciffo knab", "eciffo knab"),  # would read "bank office"
        ("Ali\u2066ce\u2069 \u200f", "Alice"),
        ("\u200b\u2060", ""),  # nothing to see: the username is shown
        ("\u3164", ""),  # a Hangul filler is a letter that renders as nothing
        ("\u2800\ufe0f", ""),  # the braille blank, a variation selector
        ("\u0301\u0301", ""),  # marks with nothing to sit on
        (FAMILY, FAMILY),  # an emoji sequence, joined by zero-width joiners, stays
        ("\u05e9\u05e8\u05d4 Sarah", "\u05e9\u05e8\u05d4 Sarah"),  # right-to-left letters stay
    ],
)
def test_a_display_name_cannot_hide_or_turn_around(client, alice, given, stored):
    response = call(client, "patch", ME, {"display_name": given}, **alice.auth)
    registered = call(
        client,
        "post",
        "/api/v1/auth/register/",
        {"username": "newcomer", "password": "a long enough passphrase", "display_name": given},
    )

    assert response.json()["display_name"] == stored
    assert registered.status_code == 201, registered.content
    assert User.objects.get(username="newcomer").display_name == stored


@pytest.mark.django_db
def test_patch_me_changes_only_the_given_fields(client, alice):
    response = call(
        client,
        "patch",
        ME,
        {"display_name": "  Alice Liddell ", "time_zone": "Europe/Paris"},
        **alice.auth,
    )

    assert response.status_code == 200, response.content
    assert response.json()["display_name"] == "Alice Liddell"
    assert response.json()["time_zone"] == "Europe/Paris"
    alice.user.refresh_from_db()
    assert (alice.user.display_name, alice.user.time_zone) == ("Alice Liddell", "Europe/Paris")

    call(client, "patch", ME, {"avatar_url": "https://img.example.com/a.png"}, **alice.auth)
    alice.user.refresh_from_db()
    assert alice.user.avatar_url == "https://img.example.com/a.png"
    assert alice.user.display_name == "Alice Liddell"


@pytest.mark.django_db
def test_patch_me_clears_the_avatar_with_null(client, alice):
    User.objects.filter(pk=alice.id).update(avatar_url="https://img.example.com/a.png")

    response = call(client, "patch", ME, {"avatar_url": None}, **alice.auth)

    assert response.status_code == 200
    assert response.json()["avatar_url"] is None
    alice.user.refresh_from_db()
    assert alice.user.avatar_url == ""


@pytest.mark.django_db
def test_patch_me_ignores_read_only_fields(client, alice):
    response = call(
        client, "patch", ME, {"username": "mallory", "id": 999, "is_staff": True}, **alice.auth
    )

    assert response.status_code == 200
    alice.user.refresh_from_db()
    assert (alice.user.username, alice.user.pk, alice.user.is_staff) == ("alice", alice.id, False)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"time_zone": ""}, "time_zone"),
        ({"avatar_url": "not a url"}, "avatar_url"),
        ({"avatar_url": "ftp://files.example.com/a.png"}, "avatar_url"),
        ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
        ({"display_name": "x" * 65}, "display_name"),
        ({"display_name": None}, "display_name"),
        ({"display_name": 42}, "display_name"),
        ({"time_zone": ["UTC"]}, "time_zone"),
    ],
)
def test_patch_me_validates_each_field_and_changes_nothing(client, alice, payload, field):
    response = call(client, "patch", ME, payload, **alice.auth)

    body = assert_error(response, 400, "invalid")
    assert list(body["fields"]) == [field]
    assert len(body["fields"][field]) == 1  # one reason, said once
    alice.user.refresh_from_db()
    assert (alice.user.time_zone, alice.user.avatar_url, alice.user.display_name) == (
        "UTC",
        "",
        "Alice A.",
    )


@pytest.mark.django_db
def test_patch_me_refuses_anonymous(client):
    assert_error(call(client, "patch", ME, {"display_name": "x"}), 401, "not_authenticated")


@pytest.mark.django_db
def test_patch_me_with_a_session_needs_the_csrf_token(alice):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice.user)

    response = call(browser, "patch", ME, {"display_name": "Forged"})

    assert_error(response, 403, "permission_denied")
    alice.user.refresh_from_db()
    assert alice.user.display_name == "Alice A."


# --- users -------------------------------------------------------------------------


@pytest.mark.django_db
def test_users_search_matches_username_or_display_name_in_any_case(client, alice, bob, charlie):
    by_username = call(client, "get", f"{USERS}?search=BO", **alice.auth).json()
    by_display_name = call(client, "get", f"{USERS}?search=charlie c", **alice.auth).json()

    assert [user["username"] for user in by_username["results"]] == ["bob"]
    assert [user["username"] for user in by_display_name["results"]] == ["charlie"]


@pytest.mark.django_db
def test_users_search_of_one_or_two_characters_matches_the_start_of_a_name(
    client, alice, bob, charlie
):
    def found(search: str) -> list[str]:
        page = call(client, "get", f"{USERS}?search={search}", **alice.auth).json()
        return [user["username"] for user in page["results"]]

    assert found("ch") == ["charlie"]
    assert found("B") == ["bob"]
    assert found("li") == []  # inside alice and charlie, at the start of neither
    assert found("lic") == ["alice"]  # three or more: anywhere


@pytest.mark.django_db
def test_users_never_shows_email_staff_flags_or_deactivated_users(client, alice, bob, deactivated):
    User.objects.filter(pk=bob.id).update(email="bob@example.com", is_staff=True)

    response = call(client, "get", USERS, **alice.auth)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [user["username"] for user in results] == ["alice", "bob"]
    assert results[1] == {
        "id": bob.id,
        "username": "bob",
        "display_name": "Bob B.",
        "avatar_url": None,
    }
    assert call(client, "get", f"{USERS}?search=dave", **alice.auth).json()["results"] == []


@pytest.mark.django_db
def test_users_pages_with_a_cursor_and_loses_no_one(client, alice, make_member):
    for number in range(7):
        make_member(f"user{number}")

    seen, url, pages = [], f"{USERS}?limit=3", 0
    while url:
        page = call(client, "get", url, **alice.auth).json()
        assert len(page["results"]) <= 3
        seen += [user["username"] for user in page["results"]]
        url, pages = page["next"], pages + 1

    assert pages == 3
    assert seen == ["alice", *[f"user{number}" for number in range(7)]]


@pytest.mark.django_db
def test_users_caps_the_page_size(client, alice, make_member):
    for number in range(101):
        make_member(f"u{number:03}")

    page = call(client, "get", f"{USERS}?limit=500", **alice.auth).json()

    assert len(page["results"]) == 100
    assert page["next"] is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("search=" + "x" * 151, "search"),
        ("search=a%00b", "search"),
        ("cursor=garbage", "cursor"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
    ],
)
def test_users_validates_its_query(client, alice, query, field):
    response = call(client, "get", f"{USERS}?{query}", **alice.auth)

    body = assert_error(response, 400, "invalid")
    assert list(body["fields"]) == [field]


@pytest.mark.django_db
def test_users_refuses_anonymous_and_deactivated(client, deactivated):
    assert_error(call(client, "get", USERS), 401, "not_authenticated")
    assert_error(call(client, "get", USERS, **deactivated.auth), 401, "authentication_failed")
