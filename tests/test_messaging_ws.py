"""The chat socket over a real daphne server, PostgreSQL and the Redis layer."""

import pytest

from tests.messaging_helpers import api, direct, group, new_id, send
from tests.support.ws import open_socket

pytestmark = pytest.mark.django_db(transaction=True)


def connect(server, member, cursor: int | None = 0):
    sock = open_socket(server.ws_url, token=member.token)
    sock.send({"type": "hello", "cursor": cursor})
    ready = sock.expect("ready")
    return sock, ready


def test_direct_message_reaches_every_device_of_both_users(live_daphne, alice, bob):
    conversation = direct(alice, bob)
    alice_phone, _ = connect(live_daphne, alice)
    alice_laptop, _ = connect(live_daphne, alice)
    bob_phone, _ = connect(live_daphne, bob)
    with alice_phone, alice_laptop, bob_phone:
        alice_phone.send(
            {"type": "send", "conversation_id": conversation, "client_msg_id": "m1", "text": "hi"}
        )
        ack = alice_phone.expect("ack")
        assert ack["client_msg_id"] == "m1"
        assert ack["duplicate"] is False
        assert ack["message"]["text"] == "hi"
        assert ack["message"]["seq"] == 1

        for device in (alice_phone, alice_laptop, bob_phone):
            event = device.expect("event", kind="message.new")
            assert event["message"] == ack["message"]
