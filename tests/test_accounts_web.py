"""The browser's account pages and the admin's account actions."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.test import Client
from knox.models import AuthToken

from accounts import services
from tests.accounts_fixtures import bearer, call, tokens_of

User = get_user_model()
STRONG = "tangerine-lighthouse-42"
ME = "/api/v1/me/"


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- sign-up --------------------------------------------------------------------------


@pytest.mark.django_db
def test_sign_up_page_has_labelled_fields_and_a_csrf_token(client):
    page = client.get("/signup/").content.decode()

    assert 'name="csrfmiddlewaretoken"' in page
    for field in ("username", "display_name", "password1", "password2"):
        assert f'<label for="id_{field}">' in page
    assert '<link rel="stylesheet" href="/static/css/base.css">' in page


@pytest.mark.django_db
def test_sign_up_creates_the_account_and_signs_in(client):
    response = client.post(
        "/signup/",
        {"username": "erin", "display_name": "Erin", "password1": STRONG, "password2": STRONG},
    )

    assert response.status_code == 302
    assert response.url == "/"
    user = User.objects.get(username="erin")
    assert user.display_name == "Erin" and user.check_password(STRONG)
    assert client.session["_auth_user_id"] == str(user.pk)
    assert "Signed in as erin" in client.get("/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"password1": "12345678", "password2": "12345678"}, "This password is too common."),
        ({"password1": STRONG, "password2": STRONG + "x"}, "didn\u2019t match"),
        ({"username": "ALICE"}, "A user with that username already exists."),
        ({"username": "bad name!"}, "Enter a valid username."),
    ],
)
def test_sign_up_shows_clear_errors_next_to_the_field(client, alice, form, message):
    data = {"username": "erin", "password1": STRONG, "password2": STRONG, **form}

    response = client.post("/signup/", data)

    assert response.status_code == 200
    page = response.content.decode()
    assert message in page
    assert 'class="field-errors"' in page
    assert 'aria-invalid="true"' in page
    assert not User.objects.filter(username="erin").exists()
    assert not signed_in(client)


@pytest.mark.django_db
def test_sign_up_refuses_a_post_without_csrf_token():
    browser = Client(enforce_csrf_checks=True)

    response = browser.post(
        "/signup/", {"username": "erin", "password1": STRONG, "password2": STRONG}
    )

    assert response.status_code == 403
    assert not User.objects.filter(username="erin").exists()


# --- log-in / log-out ---------------------------------------------------------------------


@pytest.mark.django_db
def test_log_in_and_land_on_the_app(client, alice):
    response = client.post("/login/", {"username": "alice", "password": alice.password})

    assert response.status_code == 302 and response.url == "/"
    assert signed_in(client)


@pytest.mark.django_db
def test_log_in_with_a_wrong_password_explains_without_revealing_which_part(client, alice):
    response = client.post("/login/", {"username": "alice", "password": "wrong"})

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert not signed_in(client)


@pytest.mark.django_db
def test_log_in_refuses_a_deactivated_user(client, alice):
    services.user_deactivate(user=alice.user)

    response = client.post("/login/", {"username": "alice", "password": alice.password})

    assert response.status_code == 200
    assert not signed_in(client)


@pytest.mark.django_db
def test_the_app_needs_a_signed_in_user(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response.url == "/login/?next=/"


@pytest.mark.django_db
def test_log_out_is_post_only(client, alice):
    client.force_login(alice.user)

    assert client.get("/logout/").status_code == 405
    assert signed_in(client)

    response = client.post("/logout/")

    assert response.status_code == 302 and response.url == "/login/"
    assert not signed_in(client)
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_log_out_leaves_the_users_app_tokens_alone(client, alice):
    client.force_login(alice.user)

    client.post("/logout/")

    assert call(client, "get", ME, **alice.auth).status_code == 200


# --- profile -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_profile_page_edits_name_avatar_and_time_zone(client, alice):
    client.force_login(alice.user)
    page = client.get("/account/").content.decode()
    assert '<label for="id_time_zone">' in page
    assert '<option value="Europe/Paris">Europe/Paris</option>' in page

    response = client.post(
        "/account/",
        {
            "display_name": "Alice L.",
            "avatar_url": "https://img.example.com/alice.png",
            "time_zone": "America/New_York",
        },
        follow=True,
    )

    assert "Profile saved." in response.content.decode()
    alice.user.refresh_from_db()
    assert (alice.user.display_name, alice.user.avatar_url, alice.user.time_zone) == (
        "Alice L.",
        "https://img.example.com/alice.png",
        "America/New_York",
    )


@pytest.mark.django_db
def test_profile_page_shows_errors_and_saves_nothing(client, alice):
    client.force_login(alice.user)

    response = client.post(
        "/account/",
        {"display_name": "Changed", "avatar_url": "ftp://x.example.com/a", "time_zone": "Nowhere"},
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "Enter a valid URL." in page
    assert "Select a valid choice. Nowhere is not one of the available choices." in page
    # The header still shows the stored name, not the rejected one.
    assert ">Alice A.</a>" in page
    alice.user.refresh_from_db()
    assert (alice.user.display_name, alice.user.time_zone) == ("Alice A.", "UTC")


@pytest.mark.django_db
def test_profile_page_needs_a_signed_in_user(client):
    assert client.get("/account/").url == "/login/?next=/account/"


@pytest.mark.django_db
def test_sign_out_of_all_apps_revokes_the_tokens_and_keeps_the_browser(client, alice):
    services.token_issue(user=alice.user)
    client.force_login(alice.user)
    assert "Signed in on 2 apps." in client.get("/account/").content.decode()

    response = client.post("/account/sign-out-apps/", follow=True)

    assert "Signed out of 2 apps." in response.content.decode()
    assert tokens_of(alice.user) == 0
    assert signed_in(client)


# --- password change -----------------------------------------------------------------------


@pytest.mark.django_db
def test_password_change_signs_out_everything_but_this_browser(client, alice):
    other_browser = Client()
    other_browser.force_login(alice.user)
    client.force_login(alice.user)

    response = client.post(
        "/account/password/",
        {"old_password": alice.password, "new_password1": STRONG, "new_password2": STRONG},
        follow=True,
    )

    assert "Password changed." in response.content.decode()
    alice.user.refresh_from_db()
    assert alice.user.check_password(STRONG)
    assert client.get("/account/").status_code == 200
    assert other_browser.get("/account/").status_code == 302
    assert call(client, "get", ME, **alice.auth).status_code == 401
    assert tokens_of(alice.user) == 0


@pytest.mark.django_db
def test_password_change_needs_the_old_password_and_a_strong_new_one(client, alice):
    client.force_login(alice.user)

    wrong_old = client.post(
        "/account/password/",
        {"old_password": "nope", "new_password1": STRONG, "new_password2": STRONG},
    )
    weak_new = client.post(
        "/account/password/",
        {"old_password": alice.password, "new_password1": "abc", "new_password2": "abc"},
    )

    assert "Your old password was entered incorrectly" in wrong_old.content.decode()
    assert "This password is too short" in weak_new.content.decode()
    assert tokens_of(alice.user) == 1
    alice.user.refresh_from_db()
    assert alice.user.check_password(alice.password)


# --- admin -----------------------------------------------------------------------------------


def change_form_data(moderator: Client, user_id: int) -> dict:
    """What the admin's change form would submit unchanged."""
    form = moderator.get(f"/admin/accounts/user/{user_id}/change/").context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if value is None or name == "password":
            continue
        if isinstance(value, list):
            data[name] = [str(item) for item in value]
        elif hasattr(field, "fields"):  # split date/time
            for index, part in enumerate(field.widget.decompress(value)):
                data[f"{name}_{index}"] = part or ""
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = value
    return data


@pytest.mark.django_db
def test_unticking_active_in_the_admin_signs_the_user_out(client, moderator, alice, bob):
    data = change_form_data(moderator, alice.id)
    del data["is_active"]

    response = moderator.post(f"/admin/accounts/user/{alice.id}/change/", data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    alice.user.refresh_from_db()
    assert not alice.user.is_active
    assert tokens_of(alice.user) == 0
    assert call(client, "get", ME, **alice.auth).status_code == 401
    assert call(client, "get", ME, **bob.auth).status_code == 200


@pytest.mark.django_db
def test_saving_other_fields_in_the_admin_keeps_the_tokens(client, moderator, alice):
    data = change_form_data(moderator, alice.id)
    data["display_name"] = "Renamed"

    moderator.post(f"/admin/accounts/user/{alice.id}/change/", data)

    alice.user.refresh_from_db()
    assert alice.user.display_name == "Renamed"
    assert call(client, "get", ME, **alice.auth).status_code == 200


@pytest.mark.django_db
def test_the_admin_deactivate_action(client, moderator, alice, bob, charlie):
    response = moderator.post(
        "/admin/accounts/user/",
        {"action": "deactivate_users", "_selected_action": [alice.id, bob.id]},
        follow=True,
    )

    assert "Deactivated 2 user(s)." in response.content.decode()
    assert list(
        User.objects.filter(is_active=False).order_by("username").values_list("username", flat=True)
    ) == ["alice", "bob"]
    assert call(client, "get", ME, **alice.auth).status_code == 401
    assert call(client, "get", ME, **charlie.auth).status_code == 200
    logged = LogEntry.objects.filter(change_message="Deactivated by a moderator")
    assert sorted(int(e.object_id) for e in logged) == sorted([alice.id, bob.id])


@pytest.mark.django_db
def test_an_admin_password_change_revokes_the_users_tokens(client, moderator, alice):
    response = moderator.post(
        f"/admin/accounts/user/{alice.id}/password/",
        {"password1": STRONG, "password2": STRONG, "usable_password": "true"},
    )

    assert response.status_code == 302
    alice.user.refresh_from_db()
    assert alice.user.check_password(STRONG)
    assert call(client, "get", ME, **alice.auth).status_code == 401


@pytest.mark.django_db
def test_deleting_a_token_in_the_admin_revokes_it(client, moderator, alice):
    _, other = services.token_issue(user=alice.user)
    token = AuthToken.objects.filter(user=alice.user).order_by("created").first()

    moderator.post(
        "/admin/knox/authtoken/",
        {"action": "delete_selected", "_selected_action": [token.pk], "post": "yes"},
    )

    assert call(client, "get", ME, **alice.auth).status_code == 401
    assert call(client, "get", ME, **bearer(other)).status_code == 200
