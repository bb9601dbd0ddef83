"""Push notifications: a real Celery worker on the Redis broker, pyfcm's real
code, and a local fake of Google's servers. Cast: alice sends, bob has no
device online, carol is online."""

import time

import pytest
from django.utils import timezone

from notifications.models import Device
from tests.messaging_helpers import api, direct, group, send
from tests.support.fake_fcm import PROJECT_ID, start_fake_fcm
from tests.support.ws import open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def fcm(settings, tmp_path):
    fake = start_fake_fcm()
    settings.FCM_CREDENTIALS_FILE = str(fake.write_service_account(tmp_path))
    settings.FCM_PROJECT_ID = PROJECT_ID
    settings.FCM_ENDPOINT = fake.url
    yield fake
    fake.server.shutdown()


def register(member, token: str, platform: str = "android", **fields) -> Device:
    return Device.objects.create(
        user=member.user, platform=platform, token=token, last_seen_at=timezone.now(), **fields
    )


def wait_until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_an_offline_user_gets_one_push_per_message_on_every_device(celery_worker, fcm, alice, bob):
    register(bob, "bob-phone")
    register(bob, "bob-tablet", platform="ios")
    conversation = direct(alice, bob)

    first = send(alice, conversation, "are you there?").json()["message"]
    second = send(alice, conversation, "x" * 300).json()["message"]
    wait_until(lambda: len(fcm.sent) >= 4)
    time.sleep(0.5)

    assert sorted(fcm.tokens_sent()) == ["bob-phone", "bob-phone", "bob-tablet", "bob-tablet"]
    pushes = {
        (m["message"]["token"], m["message"]["data"]["message_id"]): m["message"] for m in fcm.sent
    }
    push = pushes[("bob-phone", str(first["id"]))]
    assert push["notification"] == {"title": "Alice A.", "body": "are you there?"}
    assert push["data"] == {
        "kind": "message.new",
        "conversation_id": str(conversation),
        "message_id": str(first["id"]),
        "seq": "1",
    }
    long_body = pushes[("bob-tablet", str(second["id"]))]["notification"]["body"]
    assert len(long_body) == 200
    assert long_body.endswith("…")
    # google-auth really exchanged a signed JWT for the access token, once.
    assert fcm.token_requests == 1


def test_a_user_online_on_any_device_gets_no_push(
    celery_worker, fcm, live_daphne, alice, bob, make_member
):
    carol = make_member("carol", display_name="Carol")
    register(bob, "bob-phone")
    register(carol, "carol-phone")
    conversation = group(alice, bob, carol, title="Plans")
    with open_socket(live_daphne.ws_url, token=carol.token) as carol_laptop:
        carol_laptop.send({"type": "hello", "cursor": None})
        carol_laptop.expect("ready")

        send(alice, conversation, "dinner at 8?")
        wait_until(lambda: fcm.tokens_sent() == ["bob-phone"])
        carol_laptop.send({"type": "heartbeat"})
        time.sleep(1.0)

    assert fcm.tokens_sent() == ["bob-phone"]
    assert fcm.sent[0]["message"]["notification"]["title"] == "Alice A. in Plans"


def test_the_sender_gets_no_push_for_their_own_message(celery_worker, fcm, alice, bob):
    register(alice, "alice-phone")
    register(bob, "bob-phone")
    conversation = direct(alice, bob)

    send(alice, conversation, "hi")
    wait_until(lambda: len(fcm.sent) >= 1)
    time.sleep(0.5)

    assert fcm.tokens_sent() == ["bob-phone"]


def test_tokens_fcm_calls_unregistered_are_removed(celery_worker, fcm, alice, bob):
    register(bob, "gone-old-phone")
    register(bob, "bob-new-phone")
    conversation = direct(alice, bob)

    send(alice, conversation, "hello")
    wait_until(lambda: not Device.objects.filter(token="gone-old-phone").exists())
    wait_until(lambda: len(fcm.sent) >= 1)

    assert list(Device.objects.values_list("token", flat=True)) == ["bob-new-phone"]
    assert fcm.tokens_sent() == ["bob-new-phone"]


def test_a_push_fcm_could_not_take_is_retried_and_arrives_once(celery_worker, fcm, alice, bob):
    register(bob, "busy-phone")
    register(bob, "bob-tablet")
    conversation = direct(alice, bob)

    send(alice, conversation, "retry me")
    wait_until(lambda: "busy-phone" in fcm.tokens_sent(), timeout=20)
    time.sleep(0.5)

    assert sorted(fcm.tokens_sent()) == ["bob-tablet", "busy-phone"]
    assert fcm.failures["busy-phone"] == 2  # refused, then delivered by the retry


def test_a_registered_device_is_used_for_pushes_via_the_api(celery_worker, fcm, alice, bob):
    response = api(bob).post(
        "/api/v1/devices/",
        {"platform": "android", "token": "api-phone", "name": "Pixel"},
        format="json",
    )
    assert response.status_code in (200, 201), response.json()
    conversation = direct(alice, bob)

    send(alice, conversation, "via the API")
    wait_until(lambda: len(fcm.sent) >= 1)

    assert fcm.tokens_sent() == ["api-phone"]


def test_a_deactivated_user_gets_no_push_and_loses_their_devices(celery_worker, fcm, alice, bob):
    from accounts.services import user_deactivate

    register(bob, "bob-phone")
    register(alice, "alice-phone")
    conversation = direct(alice, bob)
    user_deactivate(user=bob.user)

    send(bob, conversation, "sent before the ban took effect?")
    send(alice, conversation, "are you still there?")
    assert not Device.objects.filter(user=bob.user).exists()
    time.sleep(1.0)

    assert fcm.tokens_sent() == []


def test_a_phone_whose_token_expired_gets_no_push(celery_worker, fcm, alice, bob):
    """Its token is refused by the API (signed out), though knox has not yet
    purged the row that would take the registration with it."""
    from knox.models import AuthToken

    expiring, _ = AuthToken.objects.create(user=bob.user)
    kept, _ = AuthToken.objects.create(user=bob.user)
    register(bob, "bob-old", auth_token=expiring)
    register(bob, "bob-new", auth_token=kept)
    AuthToken.objects.filter(pk=expiring.pk).update(expiry=timezone.now())

    send(alice, direct(alice, bob), "signed out?")
    wait_until(lambda: len(fcm.sent) >= 1)
    time.sleep(0.5)

    assert fcm.tokens_sent() == ["bob-new"]


def test_no_push_reaches_someone_who_left_before_it_went_out(alice, bob, charlie):
    """A push can be retried long after its message (Celery retries); by then
    the recipient may have left the conversation."""
    from notifications.services import message_push_device

    conversation = group(alice, bob, charlie)
    device = register(bob, "bob-phone")
    message = send(alice, conversation, "for members only").json()["message"]
    api(bob).delete(f"/api/v1/conversations/{conversation}/members/{bob.id}/")

    assert message_push_device(message_id=message["id"], device_id=device.pk) is None


def test_messages_sent_over_the_socket_are_pushed_once_each(
    celery_worker, fcm, live_daphne, alice, bob
):
    """Socket sends are stored in batches and their pushes enqueued together
    (one task per tenth of a second): each message still reaches each of the
    offline user's devices exactly once."""
    register(bob, "bob-phone")
    conversation = direct(alice, bob)
    with open_socket(live_daphne.ws_url, token=alice.token) as phone:
        phone.send({"type": "hello", "cursor": None})
        phone.expect("ready")
        for n in range(3):
            phone.send(
                {
                    "type": "send",
                    "conversation_id": conversation,
                    "client_msg_id": f"p{n}",
                    "text": f"ping {n}",
                }
            )
        acks = [phone.expect("ack", client_msg_id=f"p{n}") for n in range(3)]
    wait_until(lambda: len(fcm.sent) >= 3)
    time.sleep(0.5)

    pushed = sorted(int(m["message"]["data"]["message_id"]) for m in fcm.sent)
    assert pushed == sorted(a["message"]["id"] for a in acks)
    assert [m["message"]["token"] for m in fcm.sent] == ["bob-phone"] * 3


def test_pushes_still_waiting_go_out_when_the_chat_server_is_stopped(
    celery_worker, fcm, daphne_factory, alice, bob
):
    """A socket send's push waits for its window to be enqueued with others
    (CHAT_PUSH_WINDOW). A chat server stopped meanwhile (SIGTERM, as a deploy
    stops it) enqueues it before it exits, instead of losing it."""
    server = daphne_factory(CHAT_PUSH_WINDOW="60")
    register(bob, "bob-phone")
    conversation = direct(alice, bob)
    with open_socket(server.ws_url, token=alice.token) as phone:
        phone.send({"type": "hello", "cursor": None})
        phone.expect("ready")
        phone.send(
            {"type": "send", "conversation_id": conversation, "client_msg_id": "s1", "text": "bye"}
        )
        ack = phone.expect("ack", client_msg_id="s1")
    time.sleep(1.0)
    assert fcm.sent == []  # still waiting for its window

    server.stop()
    assert server.process.returncode == 0  # it stopped by itself, not killed
    wait_until(lambda: len(fcm.sent) >= 1)
    time.sleep(0.5)
    assert [int(m["message"]["data"]["message_id"]) for m in fcm.sent] == [ack["message"]["id"]]
