"""Moderators in the Django admin: actions take effect live and are audited.
Cast: a moderator (staff superuser), alice and bob chatting, charlie a plain user."""

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from messaging.models import InboxEvent, Membership, Message
from tests.messaging_helpers import api, direct, group, send
from tests.support.ws import open_socket

pytestmark = pytest.mark.django_db(transaction=True)


def listen(server, member):
    sock = open_socket(server.ws_url, token=member.token)
    sock.send({"type": "hello", "cursor": None})
    sock.expect("ready")
    return sock


def test_a_moderator_deletes_a_message_and_every_device_sees_the_tombstone(
    live_daphne, moderator, alice, bob
):
    conversation = direct(alice, bob)
    message = send(alice, conversation, "something abusive").json()["message"]
    with listen(live_daphne, bob) as bob_phone:
        response = moderator.post(
            "/admin/messaging/message/",
            {"action": "tombstone_messages", "_selected_action": [message["id"]]},
        )
        event = bob_phone.expect("event", kind="message.deleted")

    assert response.status_code == 302
    assert event["message"]["id"] == message["id"]
    assert event["message"]["text"] == ""
    stored = Message.objects.get(pk=message["id"])
    assert stored.deleted_at is not None
    assert stored.text == ""
    assert LogEntry.objects.filter(change_message="Deleted by a moderator").count() == 1
    # Gone from what a device syncing from an old cursor gets, and from storage.
    sync = api(bob).get("/api/v1/sync/", {"cursor": 0}).json()
    new = next(e for e in sync["events"] if e["kind"] == "message.new")
    assert (new["message"]["text"], new["message"]["deleted"]) == ("", True)
    assert "abusive" not in json.dumps(sync)
    assert not any("abusive" in json.dumps(e.payload) for e in InboxEvent.objects.all())


def test_a_moderator_removes_a_member_live(live_daphne, moderator, alice, bob, make_member):
    carol = make_member("carol")
    conversation = group(alice, bob, carol)
    membership = Membership.objects.get(conversation_id=conversation, user=bob.user)
    with listen(live_daphne, carol) as carol_phone:
        moderator.post(
            "/admin/messaging/membership/",
            {"action": "remove_members", "_selected_action": [membership.pk]},
        )
        event = carol_phone.expect("event", kind="member.removed")

    assert event["user_ids"] == [bob.id]
    assert not Membership.objects.filter(conversation_id=conversation, user=bob.user).exists()


def test_the_admin_is_for_staff_only(alice):
    client = Client()
    client.force_login(alice.user)

    response = client.get("/admin/messaging/message/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_conversations_are_view_only_so_a_stale_form_cannot_rewind_them(moderator, alice, bob):
    conversation = group(alice, bob, title="Keep")
    send(alice, conversation, "one")

    page = moderator.get(f"/admin/messaging/conversation/{conversation}/change/")
    post = moderator.post(
        f"/admin/messaging/conversation/{conversation}/change/", {"title": "Hijacked"}
    )

    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert post.status_code == 403
    assert send(alice, conversation, "two").json()["message"]["seq"] == 2
    # Nor deleted: the members' inbox events name its messages.
    deleted = moderator.post(
        f"/admin/messaging/conversation/{conversation}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 403
    assert Message.objects.filter(conversation_id=conversation).count() == 2


def test_removing_a_member_of_a_direct_chat_is_refused_with_a_message(moderator, alice, bob):
    conversation = direct(alice, bob)
    membership = Membership.objects.get(conversation_id=conversation, user=bob.user)

    response = moderator.post(
        "/admin/messaging/membership/",
        {"action": "remove_members", "_selected_action": [membership.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert b"Removed 0 member(s)." in response.content
    assert Membership.objects.filter(conversation_id=conversation).count() == 2
