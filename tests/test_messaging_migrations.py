"""Migrations that rewrite stored data, run both ways on the real database."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from messaging import wire
from messaging.inbox import inbox_read
from messaging.models import InboxEvent, Message
from tests.messaging_helpers import api, direct, send

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("messaging", "0006_send_batch_bounded")]
AFTER = [("messaging", "0007_message_events_by_reference")]


def _migrate(target: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)


def test_stored_message_copies_become_references_and_back(alice, bob):
    """0007 strips the message copies that inbox events held (a deleted
    message's words among them) down to the message's id; a read gives the
    message as it is now either way."""
    conversation = direct(alice, bob)
    message_id = send(alice, conversation, "regretted").json()["message"]["id"]
    _migrate(BEFORE)
    try:
        # As 0006 stored it: a copy of the message in each member's event.
        Message.objects.filter(pk=message_id).update(text="regretted")
        copy = {"message": wire.message_dict(Message.objects.get(pk=message_id))}
        InboxEvent.objects.filter(kind="message.new").update(payload=copy)
        # Then deleted without touching the copies, as 0006's services did.
        Message.objects.filter(pk=message_id).update(text="", deleted_at="2026-01-01T00:00Z")

        _migrate(AFTER)
        payloads = list(InboxEvent.objects.filter(kind="message.new").values_list("payload"))
        assert payloads == [({"message_id": message_id},)] * 2
        (event,) = [e for e in inbox_read(user_id=bob.id, after=0) if e["kind"] == "message.new"]
        assert (event["message"]["text"], event["message"]["deleted"]) == ("", True)

        _migrate(BEFORE)
        tombstone = {"message": wire.message_dict(Message.objects.get(pk=message_id))}
        payloads = list(InboxEvent.objects.filter(kind="message.new").values_list("payload"))
        assert payloads == [(tombstone,)] * 2
    finally:
        _migrate(AFTER)
    # The function is 0007's again: a new send stores a reference.
    new_id = send(bob, conversation, "hello").json()["message"]["id"]
    stored = InboxEvent.objects.filter(kind="message.new").order_by("-id").first()
    assert stored.payload == {"message_id": new_id}
    assert api(bob).get("/api/v1/sync/", {"cursor": 0}).status_code == 200
