"""The chat socket over a real daphne server, PostgreSQL and the Redis layer.

Cast: alice and bob talk, charlie should have no access."""

import pytest

from messaging.models import Message
from tests.messaging_helpers import api, connect, direct, group, send, send_frame
from tests.support.ws import open_socket

pytestmark = pytest.mark.django_db(transaction=True)


def test_direct_message_reaches_every_device_of_both_users(live_daphne, alice, bob):
    conversation = direct(alice, bob)
    alice_phone, _ = connect(live_daphne, alice)
    alice_laptop, _ = connect(live_daphne, alice)
    bob_phone, _ = connect(live_daphne, bob)
    with alice_phone, alice_laptop, bob_phone:
        alice_phone.send(send_frame(conversation, "hi", "m1"))
        ack = alice_phone.expect("ack")
        assert ack["client_msg_id"] == "m1"
        assert ack["duplicate"] is False
        assert ack["message"]["text"] == "hi"
        assert ack["message"]["seq"] == 1

        events = {}
        for device in (alice_laptop, bob_phone):
            events[device] = device.expect("event", kind="message.new")
            assert events[device]["message"] == ack["message"]
        # The sending device's event is its ack (the next cursor of its
        # inbox): it does not come a second time.
        assert ack["cursor"] == events[alice_laptop]["cursor"]
        assert [f for f in alice_phone.frames_for(0.5) if f["type"] == "event"] == []
        alice_phone.send(send_frame(conversation, "again", "m2"))
        assert alice_phone.expect("ack")["cursor"] == ack["cursor"] + 1


def test_an_ack_without_a_cursor_leaves_the_event_to_come_in_its_turn(live_daphne, alice, bob):
    conversation = direct(alice, bob)
    with open_socket(live_daphne.ws_url, token=alice.token) as phone:
        # Before `hello` the device has no cursor: the ack cannot stand for
        # its event, which the replay then brings.
        phone.send(send_frame(conversation, "early", "e1"))
        ack = phone.expect("ack")
        assert "cursor" not in ack
        phone.send({"type": "hello", "cursor": 0})
        event = phone.expect("event", kind="message.new")
        assert event["message"] == ack["message"]
        assert phone.expect("ready")["cursor"] == event["cursor"]


def test_group_message_reaches_every_device_of_every_member(live_daphne, alice, bob, make_member):
    carol = make_member("carol")
    conversation = group(alice, bob, carol)
    devices = [connect(live_daphne, m)[0] for m in (alice, bob, bob, carol, carol)]
    try:
        devices[1].send(send_frame(conversation, "hello team"))
        assert devices[1].expect("ack")["message"]["text"] == "hello team"
        for device in devices[:1] + devices[2:]:
            event = device.expect("event", kind="message.new")
            assert event["message"]["text"] == "hello team"
            assert event["message"]["sender_id"] == bob.id
    finally:
        for device in devices:
            device.close()


def test_an_offline_device_gets_what_it_missed_in_order_then_ready_then_live(
    live_daphne, alice, bob
):
    conversation = direct(alice, bob)
    bob_phone, ready = connect(live_daphne, bob)
    cursor = ready["cursor"]
    bob_phone.close()
    for text in ("one", "two", "three"):
        send(alice, conversation, text)

    with open_socket(live_daphne.ws_url, token=bob.token) as again:
        again.send({"type": "hello", "cursor": cursor})
        replayed = [again.recv() for _ in range(3)]
        ready = again.recv()
        send(alice, conversation, "four")
        live = again.expect("event")

    assert [f["message"]["text"] for f in replayed] == ["one", "two", "three"]
    assert [f["cursor"] for f in replayed] == [cursor + 1, cursor + 2, cursor + 3]
    assert ready["type"] == "ready"
    assert ready["cursor"] == cursor + 3
    assert live["message"]["text"] == "four"
    assert live["cursor"] == cursor + 4


def test_hello_without_a_cursor_starts_live_from_now(live_daphne, alice, bob):
    conversation = direct(alice, bob)
    send(alice, conversation, "old")

    bob_phone, ready = connect(live_daphne, bob, cursor=None)
    with bob_phone:
        assert ready["cursor"] == 2  # member.added, then the message
        send(alice, conversation, "new")
        event = bob_phone.expect("event")
        assert event["message"]["text"] == "new"


def test_a_cursor_from_the_future_is_reset(live_daphne, alice):
    sock, ready = connect(live_daphne, alice, cursor=1000)
    sock.close()

    assert ready["reset"] is True
    assert ready["cursor"] == 0


def test_a_resend_is_acknowledged_with_the_same_message_and_delivered_once(live_daphne, alice, bob):
    conversation = direct(alice, bob)
    alice_phone, _ = connect(live_daphne, alice)
    bob_phone, _ = connect(live_daphne, bob)
    with alice_phone, bob_phone:
        alice_phone.send(send_frame(conversation, "only once", "retry-me"))
        first = alice_phone.expect("ack")
        alice_phone.send(send_frame(conversation, "only once", "retry-me"))
        second = alice_phone.expect("ack")

        assert second["duplicate"] is True
        assert second["message"] == first["message"]
        bob_frames = [bob_phone.expect("event"), *bob_phone.frames_for(0.7)]
    assert [f["message"]["id"] for f in bob_frames if f["type"] == "event"] == [
        first["message"]["id"]
    ]
    assert Message.objects.count() == 1


def test_read_markers_reach_own_devices_and_the_other_person(live_daphne, alice, bob):
    conversation = direct(alice, bob)
    send(alice, conversation, "did you read this?")
    alice_phone, _ = connect(live_daphne, alice)
    bob_phone, _ = connect(live_daphne, bob)
    bob_laptop, _ = connect(live_daphne, bob)
    with alice_phone, bob_phone, bob_laptop:
        bob_phone.send({"type": "read", "conversation_id": conversation, "seq": 1})

        for device in (alice_phone, bob_laptop, bob_phone):
            event = device.expect("event", kind="read")
            assert event["conversation_id"] == conversation
            assert event["user_id"] == bob.id
            assert event["seq"] == 1
    assert api(bob).get(f"/api/v1/conversations/{conversation}/").json()["unread_count"] == 0


def test_group_read_markers_stay_private(live_daphne, alice, bob):
    conversation = group(alice, bob)
    send(alice, conversation, "news")
    alice_phone, _ = connect(live_daphne, alice)
    bob_phone, _ = connect(live_daphne, bob)
    with alice_phone, bob_phone:
        bob_phone.send({"type": "read", "conversation_id": conversation, "seq": 1})
        bob_phone.expect("event", kind="read")

        assert [f for f in alice_phone.frames_for(0.7) if f.get("kind") == "read"] == []


def test_typing_reaches_the_others_briefly_and_is_throttled(live_daphne, alice, bob):
    conversation = direct(alice, bob)
    alice_phone, _ = connect(live_daphne, alice)
    bob_phone, _ = connect(live_daphne, bob)
    with alice_phone, bob_phone:
        alice_phone.send({"type": "typing", "conversation_id": conversation})
        alice_phone.send({"type": "typing", "conversation_id": conversation})

        typing = bob_phone.expect("typing")
        assert typing == {
            "type": "typing",
            "conversation_id": conversation,
            "user_id": alice.id,
            "expires_in": 5.0,
        }
        assert [f for f in bob_phone.frames_for(0.7) if f["type"] == "typing"] == []
        assert [f for f in alice_phone.frames_for(0.3) if f["type"] == "typing"] == []


def test_typing_right_after_sending_shows_at_once(live_daphne, alice, bob):
    """A message clears its sender's typing line on the other side; typing on
    straight away must show again, not be throttled for two seconds."""
    conversation = direct(alice, bob)
    alice_phone, _ = connect(live_daphne, alice)
    bob_phone, _ = connect(live_daphne, bob)
    with alice_phone, bob_phone:
        alice_phone.send({"type": "typing", "conversation_id": conversation})
        bob_phone.expect("typing")
        alice_phone.send(send_frame(conversation, "done typing"))
        alice_phone.expect("ack")
        alice_phone.send({"type": "typing", "conversation_id": conversation})

        frames = bob_phone.frames_for(0.7)
    assert [f["user_id"] for f in frames if f["type"] == "typing"] == [alice.id]


def test_edits_and_deletes_are_events_on_every_device(live_daphne, alice, bob):
    conversation = direct(alice, bob)
    message = send(alice, conversation, "draft").json()["message"]
    bob_phone, _ = connect(live_daphne, bob, cursor=None)
    with bob_phone:
        api(alice).patch(f"/api/v1/messages/{message['id']}/", {"text": "final"})
        edited = bob_phone.expect("event", kind="message.edited")
        api(alice).delete(f"/api/v1/messages/{message['id']}/")
        deleted = bob_phone.expect("event", kind="message.deleted")

    assert edited["message"]["text"] == "final"
    assert edited["message"]["edited_at"] is not None
    assert deleted["message"] == {**edited["message"], "text": "", "deleted": True}
    # A device that was away replays all three events: each with the tombstone.
    with open_socket(live_daphne.ws_url, token=bob.token) as laptop:
        laptop.send({"type": "hello", "cursor": 0})
        replayed = [f for f in laptop.frames_for(1.5) if f.get("kind", "").startswith("message.")]
    assert [f["kind"] for f in replayed] == ["message.new", "message.edited", "message.deleted"]
    assert all(f["message"] == deleted["message"] for f in replayed)


def test_membership_changes_reach_every_affected_device(live_daphne, alice, bob, make_member):
    carol = make_member("carol")
    conversation = group(alice, bob)
    bob_phone, _ = connect(live_daphne, bob, cursor=None)
    carol_phone, _ = connect(live_daphne, carol, cursor=None)
    with bob_phone, carol_phone:
        api(alice).post(
            f"/api/v1/conversations/{conversation}/members/",
            {"user_ids": [carol.id]},
            format="json",
        )
        for device in (bob_phone, carol_phone):
            added = device.expect("event", kind="member.added")
            assert added["user_ids"] == [carol.id]
            assert added["conversation"]["id"] == conversation
            assert len(added["conversation"]["members"]) == 3

        api(alice).delete(f"/api/v1/conversations/{conversation}/members/{carol.id}/")
        for device in (bob_phone, carol_phone):
            removed = device.expect("event", kind="member.removed")
            assert removed == {**removed, "conversation_id": conversation, "user_ids": [carol.id]}


# --- authorisation on the socket -------------------------------------------------


def test_an_outsider_gets_error_frames_and_keeps_the_connection(live_daphne, alice, bob, charlie):
    conversation = direct(alice, bob)
    send(alice, conversation, "secret")
    bob_phone, _ = connect(live_daphne, bob, cursor=None)
    intruder, _ = connect(live_daphne, charlie)
    with intruder, bob_phone:
        intruder.send(send_frame(conversation, "let me in", "c1"))
        refused_send = intruder.expect("error")
        intruder.send({"type": "read", "conversation_id": conversation, "seq": 1})
        refused_read = intruder.expect("error")
        intruder.send({"type": "typing", "conversation_id": conversation})
        refused_typing = intruder.expect("error")

        assert refused_send == {
            "type": "error",
            "code": "conversation_not_found",
            "detail": "No such conversation.",
            "client_msg_id": "c1",
        }
        assert refused_read["code"] == "conversation_not_found"
        assert refused_typing["code"] == "conversation_not_found"
        # Still connected and able to talk in his own conversations.
        own = direct(charlie, alice)
        intruder.send(send_frame(own, "hi alice"))
        assert intruder.expect("ack")["message"]["text"] == "hi alice"
        assert bob_phone.frames_for(0.5) == []
    assert Message.objects.filter(sender=charlie.user).count() == 1


def test_a_socket_without_credentials_is_closed(live_daphne):
    sock = open_socket(live_daphne.ws_url)

    assert sock.closed_with() == 4401


def test_a_socket_with_a_wrong_token_is_closed(live_daphne):
    sock = open_socket(live_daphne.ws_url, token="0" * 64)

    assert sock.closed_with() == 4401


# --- bad input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "malformed_json"),
        ("[1, 2]", "invalid_frame"),
        ('{"type": 7}', "invalid_frame"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "send", "client_msg_id": "x", "text": "hi"}', "invalid_frame"),
        (
            '{"type": "send", "conversation_id": "1", "client_msg_id": "x", "text": "hi"}',
            "invalid_frame",
        ),
        (
            '{"type": "send", "conversation_id": -1, "client_msg_id": "x", "text": "hi"}',
            "invalid_frame",
        ),
        ('{"type": "send", "conversation_id": CONV, "text": "hi"}', "invalid_client_msg_id"),
        (
            '{"type": "send", "conversation_id": CONV, "client_msg_id": "x\\n", "text": "hi"}',
            "invalid_client_msg_id",
        ),
        ('{"type": "send", "conversation_id": CONV, "client_msg_id": "x"}', "invalid_text"),
        (
            '{"type": "send", "conversation_id": CONV, "client_msg_id": "x", "text": 5}',
            "invalid_text",
        ),
        (
            '{"type": "send", "conversation_id": CONV, "client_msg_id": "x", "text": "  "}',
            "empty_text",
        ),
        ('{"type": "read", "conversation_id": CONV, "seq": "one"}', "invalid_frame"),
        ('{"type": "read", "conversation_id": CONV, "seq": true}', "invalid_frame"),
        ('{"type": "hello", "cursor": -3}', "invalid_frame"),
        (
            '{"type": "read", "conversation_id": 1000000000000000000000000000000, "seq": 1}',
            "invalid_frame",
        ),
        ('{"type": "typing"}', "invalid_frame"),
    ],
)
def test_bad_frames_get_an_error_frame_and_the_socket_keeps_working(
    live_daphne, alice, bob, raw, code
):
    conversation = direct(alice, bob)
    sock, _ = connect(live_daphne, alice)
    with sock:
        sock.send_raw(raw.replace("CONV", str(conversation)))
        error = sock.expect("error")
        assert error["code"] == code
        assert error["detail"]

        sock.send(send_frame(conversation, "still here"))
        assert sock.expect("ack")["message"]["text"] == "still here"
    assert list(Message.objects.values_list("text", flat=True)) == ["still here"]


def test_oversized_text_and_binary_frames_are_refused_without_closing(live_daphne, alice, bob):
    conversation = direct(alice, bob)
    sock, _ = connect(live_daphne, alice)
    with sock:
        sock.send(send_frame(conversation, "x" * 100_001, "big"))
        too_long = sock.expect("error")
        sock.send_raw(b"\x00\x01binary")
        binary = sock.expect("error")
        sock.send(send_frame(conversation, "fine"))
        ack = sock.expect("ack")

    assert too_long["code"] == "text_too_long"
    assert too_long["client_msg_id"] == "big"
    assert binary["code"] == "binary_not_supported"
    assert ack["message"]["seq"] == 1


# --- several chat servers --------------------------------------------------------


def test_delivery_crosses_daphne_processes_through_redis(live_daphne, daphne_factory, alice, bob):
    other_server = daphne_factory()
    conversation = direct(alice, bob)
    alice_phone, _ = connect(live_daphne, alice)
    bob_phone, _ = connect(other_server, bob)
    alice_laptop, _ = connect(other_server, alice)
    with alice_phone, bob_phone, alice_laptop:
        bob_phone.send(send_frame(conversation, "from the other server"))
        bob_phone.expect("ack")
        for device in (alice_phone, alice_laptop):
            event = device.expect("event", kind="message.new")
            assert event["message"]["text"] == "from the other server"
