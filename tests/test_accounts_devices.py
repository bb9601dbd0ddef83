"""Push devices: register, list, unregister; a token belongs to one user."""

import pytest

from accounts import services
from notifications.models import Device
from tests import accounts_fixtures
from tests.accounts_fixtures import assert_error, bearer, call

deactivated = accounts_fixtures.deactivated
DEVICES = "/api/v1/devices/"
UNREGISTER = "/api/v1/devices/unregister/"
PHONE = {"platform": "android", "token": "fcm-token-alice-pixel", "name": "Pixel 8"}


def register(client, member, **fields):
    return call(client, "post", DEVICES, {**PHONE, **fields}, **member.auth)


@pytest.mark.django_db
def test_register_a_device_and_see_it_listed(client, alice):
    response = register(client, alice)

    assert response.status_code == 201, response.content
    device = response.json()
    assert {key: device[key] for key in ("platform", "token", "name")} == PHONE
    assert device["created_at"] and device["last_seen_at"]
    listed = call(client, "get", DEVICES, **alice.auth).json()
    assert [item["id"] for item in listed] == [device["id"]]
    assert Device.objects.get().user == alice.user


@pytest.mark.django_db
def test_a_browser_session_cannot_register_a_push_device(client, alice):
    """A registration ends with the API token it came with (log-out deletes
    it); one made by a session would go on receiving pushes after log-out."""
    from django.test import Client

    browser = Client(enforce_csrf_checks=False)
    browser.force_login(alice.user)

    response = browser.post(DEVICES, PHONE, content_type="application/json")

    assert_error(response, 403, "token_required")
    assert not Device.objects.exists()


@pytest.mark.django_db
def test_registering_the_same_token_again_refreshes_it(client, alice):
    first = register(client, alice).json()

    again = register(client, alice, name="Pixel 8 Pro", platform="android")

    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["name"] == "Pixel 8 Pro"
    assert again.json()["last_seen_at"] >= first["last_seen_at"]
    assert Device.objects.count() == 1


@pytest.mark.django_db
def test_a_token_registered_by_another_user_moves_to_them(client, alice, bob):
    register(client, alice)

    response = register(client, bob, platform="ios")

    assert response.status_code == 200
    assert call(client, "get", DEVICES, **alice.auth).json() == []
    assert [item["token"] for item in call(client, "get", DEVICES, **bob.auth).json()] == [
        PHONE["token"]
    ]
    assert Device.objects.get().platform == "ios"


@pytest.mark.django_db
def test_each_user_sees_only_their_devices(client, alice, bob):
    register(client, alice)
    register(client, bob, token="fcm-token-bob")

    assert [d["token"] for d in call(client, "get", DEVICES, **alice.auth).json()] == [
        PHONE["token"]
    ]
    assert [d["token"] for d in call(client, "get", DEVICES, **bob.auth).json()] == [
        "fcm-token-bob"
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"platform": "windows-phone"}, "platform"),
        ({"token": ""}, "token"),
        ({"token": "t" * 513}, "token"),
        ({"name": "n" * 101}, "name"),
    ],
)
def test_register_validates_each_field(client, alice, payload, field):
    response = register(client, alice, **payload)

    body = assert_error(response, 400, "invalid")
    assert list(body["fields"]) == [field]
    assert not Device.objects.exists()


@pytest.mark.django_db
def test_register_requires_platform_and_token(client, alice):
    response = call(client, "post", DEVICES, {}, **alice.auth)

    assert set(assert_error(response, 400, "invalid")["fields"]) == {"platform", "token"}


@pytest.mark.django_db
def test_devices_refuse_anonymous_and_deactivated(client, deactivated):
    for method, url, body in [
        ("get", DEVICES, None),
        ("post", DEVICES, PHONE),
        ("post", UNREGISTER, {"token": PHONE["token"]}),
        ("delete", f"{DEVICES}1/", None),
    ]:
        assert_error(call(client, method, url, body), 401, "not_authenticated")
        assert_error(
            call(client, method, url, body, **deactivated.auth), 401, "authentication_failed"
        )


@pytest.mark.django_db
def test_delete_by_id_removes_only_the_owners_device(client, alice, bob):
    device = register(client, alice).json()

    by_bob = call(client, "delete", f"{DEVICES}{device['id']}/", **bob.auth)
    by_alice = call(client, "delete", f"{DEVICES}{device['id']}/", **alice.auth)

    # Another user's device answers exactly like one that does not exist.
    assert assert_error(by_bob, 404, "not_found")["detail"] == "No such device."
    assert by_alice.status_code == 204
    assert not Device.objects.exists()
    assert_error(
        call(client, "delete", f"{DEVICES}{device['id']}/", **alice.auth), 404, "not_found"
    )


@pytest.mark.django_db
def test_delete_by_token_removes_only_the_owners_device(client, alice, bob):
    register(client, alice)

    by_bob = call(client, "post", UNREGISTER, {"token": PHONE["token"]}, **bob.auth)
    assert_error(by_bob, 404, "not_found")
    assert Device.objects.count() == 1

    by_alice = call(client, "post", UNREGISTER, {"token": PHONE["token"]}, **alice.auth)
    assert by_alice.status_code == 204
    assert not Device.objects.exists()


@pytest.mark.django_db
def test_delete_by_token_needs_the_token(client, alice):
    response = call(client, "post", UNREGISTER, {}, **alice.auth)

    assert list(assert_error(response, 400, "invalid")["fields"]) == ["token"]


@pytest.mark.django_db
def test_logging_out_unregisters_the_devices_of_that_token(client, alice):
    _, tablet = services.token_issue(user=alice.user)
    register(client, alice)
    call(client, "post", DEVICES, {**PHONE, "token": "fcm-tablet"}, **bearer(tablet))

    call(client, "post", "/api/v1/auth/logout/", **alice.auth)

    # The phone signed out and gets no more pushes; the tablet still does.
    assert list(Device.objects.values_list("token", flat=True)) == ["fcm-tablet"]


@pytest.mark.django_db
def test_deactivation_unregisters_every_device(client, alice):
    register(client, alice)

    services.user_deactivate(user=alice.user)

    assert not Device.objects.exists()


@pytest.mark.django_db
def test_a_user_keeps_at_most_the_twenty_most_recent_devices(client, alice):
    for number in range(services.MAX_DEVICES_PER_USER + 2):
        register(client, alice, token=f"token-{number:02}")

    tokens = [device["token"] for device in call(client, "get", DEVICES, **alice.auth).json()]

    assert len(tokens) == services.MAX_DEVICES_PER_USER
    assert tokens[0] == "token-21"
    assert "token-00" not in tokens and "token-01" not in tokens
