"""What the first review found: odd input, floods, lost deliveries, removed
senders, private group read state. Over a live daphne with the Redis layer."""

import time

import pytest

from messaging.models import Membership, Message
from tests.messaging_helpers import api, direct, group, new_id, send
from tests.support.ws import Socket, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


def connect(server, member, cursor: int | None = 0) -> Socket:
    sock = open_socket(server.ws_url, token=member.token)
    sock.send({"type": "hello", "cursor": cursor})
    sock.expect("ready")
    return sock


def send_raw(conversation: int, text_json: str) -> str:
    return (
        f'{{"type": "send", "conversation_id": {conversation}, '
        f'"client_msg_id": "{new_id()}", "text": {text_json}}}'
    )


def test_unstorable_and_invisible_text_and_deep_json_are_refused_on_the_socket(
    live_daphne, alice, bob
):
    conversation = direct(alice, bob)
    with connect(live_daphne, alice) as sock:
        sock.send_raw(send_raw(conversation, '"a\\ud800b"'))
        surrogate = sock.expect("error")
        sock.send_raw(send_raw(conversation, '"\\u200b\\u200d \\u2060"'))
        invisible = sock.expect("error")
        sock.send_raw("[" * 100_000)
        deep = sock.expect("error")
        sock.send(
            {
                "type": "send",
                "conversation_id": conversation,
                "client_msg_id": "ok",
                "text": "still fine \u200b",
            }
        )
        ack = sock.expect("ack")

    assert surrogate["code"] == "invalid_text"
    assert invisible["code"] == "empty_text"
    assert deep["code"] == "malformed_json"
    assert ack["message"]["text"] == "still fine \u200b"
    assert Message.objects.count() == 1


def test_deeply_nested_json_is_a_400_over_rest(alice):
    response = api(alice).generic(
        "POST", "/api/v1/conversations/", "[" * 100_000, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_a_flood_of_frames_is_throttled_and_the_socket_survives(live_daphne, alice, bob):
    conversation = direct(alice, bob)
    with connect(live_daphne, alice) as sock:
        for _ in range(150):
            sock.send({"type": "typing", "conversation_id": conversation})
        frames = sock.frames_for(1.5)
        time.sleep(1.0)  # the bucket refills
        sock.send(
            {
                "type": "send",
                "conversation_id": conversation,
                "client_msg_id": "after",
                "text": "calm again",
            }
        )
        ack = sock.expect("ack")

    throttled = [f for f in frames if f.get("code") == "throttled"]
    assert 50 <= len(throttled) < 150
    assert ack["message"]["text"] == "calm again"


def test_a_lost_live_delivery_is_filled_in_before_the_next_event(
    live_daphne, daphne_factory, alice, bob
):
    # A server on another channel-layer prefix: its deliveries never reach
    # live_daphne, as if the layer had dropped them. The inbox still has them.
    elsewhere = daphne_factory(REDIS_PREFIX="elsewhere")
    conversation = direct(alice, bob)
    with connect(live_daphne, bob) as bob_phone, connect(elsewhere, alice) as lost:
        lost.send(
            {
                "type": "send",
                "conversation_id": conversation,
                "client_msg_id": "l1",
                "text": "lost in transit",
            }
        )
        lost.expect("ack")
        assert [f for f in bob_phone.frames_for(0.5) if f["type"] == "event"] == []

        send(alice, conversation, "the next one")
        first = bob_phone.expect("event", kind="message.new")
        second = bob_phone.expect("event", kind="message.new")

    assert [first["message"]["text"], second["message"]["text"]] == [
        "lost in transit",
        "the next one",
    ]
    assert second["cursor"] == first["cursor"] + 1


def test_a_lost_last_delivery_arrives_with_a_heartbeat(live_daphne, daphne_factory, alice, bob):
    elsewhere = daphne_factory(REDIS_PREFIX="elsewhere")
    conversation = direct(alice, bob)
    with connect(live_daphne, bob) as bob_phone, connect(elsewhere, alice) as lost:
        lost.send(
            {
                "type": "send",
                "conversation_id": conversation,
                "client_msg_id": "l2",
                "text": "nothing comes after me",
            }
        )
        lost.expect("ack")
        time.sleep(1.2)  # the test settings check the inbox head every second
        bob_phone.send({"type": "heartbeat"})
        event = bob_phone.expect("event", kind="message.new", timeout=3)

    assert event["message"]["text"] == "nothing comes after me"


def test_a_resend_after_leaving_is_still_acknowledged(alice, bob):
    conversation = group(alice, bob)
    first = send(bob, conversation, "bye", client_msg_id="last-words").json()["message"]
    api(bob).delete(f"/api/v1/conversations/{conversation}/members/{bob.id}/")

    again = send(bob, conversation, "bye", client_msg_id="last-words")
    new = send(bob, conversation, "hello?")

    assert again.status_code == 200
    assert again.json() == {"duplicate": True, "message": first}
    assert new.status_code == 404


def test_group_read_markers_are_private_and_direct_ones_are_receipts(alice, bob):
    team, pair = group(alice, bob), direct(alice, bob)
    for conversation in (team, pair):
        send(alice, conversation, "hi")
        api(bob).post(f"/api/v1/conversations/{conversation}/read/", {"seq": 1})

    team_view = api(alice).get(f"/api/v1/conversations/{team}/").json()
    pair_view = api(alice).get(f"/api/v1/conversations/{pair}/").json()

    assert {m["user_id"]: m["last_read_seq"] for m in team_view["members"]} == {
        alice.id: None,
        bob.id: None,
    }
    assert team_view["last_read_seq"] == 1  # the viewer's own marker
    assert {m["user_id"]: m["last_read_seq"] for m in pair_view["members"]} == {
        alice.id: 1,
        bob.id: 1,
    }


def test_when_the_owner_leaves_every_device_learns_the_new_owner(live_daphne, alice, bob):
    conversation = group(alice, bob)
    with connect(live_daphne, bob, cursor=None) as bob_phone:
        api(alice).delete(f"/api/v1/conversations/{conversation}/members/{alice.id}/")
        bob_phone.expect("event", kind="member.removed")
        updated = bob_phone.expect("event", kind="conversation.updated")

    assert [(m["user_id"], m["role"]) for m in updated["conversation"]["members"]] == [
        (bob.id, "owner")
    ]
    assert Membership.objects.get(conversation_id=conversation).role == "owner"


def test_presence_frames_carry_a_growing_version(live_daphne, alice, bob):
    direct(alice, bob)
    with connect(live_daphne, bob, cursor=None) as bob_phone:
        alice_phone = connect(live_daphne, alice, cursor=None)
        online = bob_phone.expect("presence", user_id=alice.id)
        alice_phone.close()
        offline = bob_phone.expect("presence", user_id=alice.id)

    assert (online["status"], offline["status"]) == ("online", "offline")
    assert offline["version"] > online["version"] > 0


def test_a_socket_opened_with_a_revoked_token_is_closed(live_daphne, alice):
    sock = open_socket(live_daphne.ws_url, token=alice.token)
    sock.send({"type": "hello", "cursor": None})
    sock.expect("ready")
    api(alice).post("/api/v1/auth/logout/")

    assert sock.closed_with() == 4401
    again = open_socket(live_daphne.ws_url, token=alice.token)
    assert again.closed_with() == 4401


def test_a_throttled_send_names_its_client_msg_id(live_daphne, alice, bob):
    conversation = direct(alice, bob)
    with connect(live_daphne, alice) as sock:
        for _ in range(70):
            sock.send({"type": "typing", "conversation_id": conversation})
        sock.send(
            {
                "type": "send",
                "conversation_id": conversation,
                "client_msg_id": "late",
                "text": "too fast",
            }
        )
        frames = sock.frames_for(1.0)

    assert {
        "type": "error",
        "code": "throttled",
        "detail": "Too many frames; slow down.",
        "client_msg_id": "late",
    } in frames
    assert not Message.objects.exists()


def test_presence_on_demand_carries_the_version_of_the_last_change(live_daphne, alice, bob):
    direct(alice, bob)
    with connect(live_daphne, bob, cursor=None) as bob_phone:
        alice_phone = connect(live_daphne, alice, cursor=None)
        frame = bob_phone.expect("presence", user_id=alice.id)
        body = api(bob).get(f"/api/v1/presence/?user_ids={alice.id}").json()
        alice_phone.close()

    assert body[0]["status"] == "online"
    assert body[0]["version"] == frame["version"]


def test_presence_versions_keep_growing_after_redis_loses_its_data(live_daphne, alice, bob):
    from presence.store import get_store

    direct(alice, bob)
    with connect(live_daphne, bob, cursor=None) as bob_phone:
        connect(live_daphne, alice, cursor=None).close()
        bob_phone.expect("presence", user_id=alice.id, status="online")
        before = bob_phone.expect("presence", user_id=alice.id, status="offline")["version"]
        store = get_store()
        store.sync.delete(*store._keys(alice.id))  # as after a Redis restart

        with connect(live_daphne, alice, cursor=None):
            after = bob_phone.expect("presence", user_id=alice.id, status="online")["version"]

    assert after > before
