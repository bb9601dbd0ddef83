"""Migrations that rewrite stored data, run both ways on the real database."""

import json

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from messaging import wire
from messaging.inbox import inbox_append, inbox_read, inbox_read_text
from messaging.models import InboxEvent, Message
from tests.messaging_helpers import api, direct, send

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("messaging", "0006_send_batch_bounded")]
AFTER = [("messaging", "0007_message_events_by_reference")]


def _migrate(target: list[tuple[str, str]] | None = None) -> None:
    """To `target`, or to the newest migrations (as every other test expects
    the schema) when None."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target if target is not None else executor.loader.graph.leaf_nodes())


def _message_payloads() -> list[dict]:
    kinds = ("message.new", "message.edited", "message.deleted")
    events = InboxEvent.objects.filter(kind__in=kinds).order_by("id")
    return list(events.values_list("payload", flat=True))


def test_stored_message_copies_become_references_and_back(alice, bob):
    """0007 strips the message copies that inbox events held (a deleted
    message's words among them) down to the message's id; a read gives the
    message as it is now either way; going back restores 0006's copies and
    function."""
    conversation = direct(alice, bob)
    _migrate(BEFORE)
    try:
        # 0006's function stores a copy in each member's event...
        message_id = send(alice, conversation, "regretted").json()["message"]["id"]
        copy = {"message": wire.message_dict(Message.objects.get(pk=message_id))}
        assert _message_payloads() == [copy, copy]
        # ... and so did 0006's edits and deletes, which left them behind.
        with transaction.atomic():
            inbox_append(user_ids=[alice.id, bob.id], kind="message.edited", payload=copy)
            inbox_append(user_ids=[alice.id, bob.id], kind="message.deleted", payload=copy)
        Message.objects.filter(pk=message_id).update(text="", deleted_at="2026-01-01T00:00Z")

        _migrate(AFTER)
        assert _message_payloads() == [{"message_id": message_id}] * 6
        replayed = [e for e in inbox_read(user_id=bob.id, after=0) if "message" in e]
        assert len(replayed) == 3
        assert all((e["message"]["text"], e["message"]["deleted"]) == ("", True) for e in replayed)

        _migrate(BEFORE)
        tombstone = {"message": wire.message_dict(Message.objects.get(pk=message_id))}
        assert _message_payloads() == [tombstone] * 6
        send(bob, conversation, "back on 0006")
        assert _message_payloads()[-1]["message"]["text"] == "back on 0006"
        # A socket's replay reads an old copy as it reads a reference: it
        # gives the message as it is now, not as copied.
        Message.objects.filter(text="back on 0006").update(text="changed since")
        spliced = [json.loads(text) for _, text in inbox_read_text(user_id=bob.id, after=0)]
        assert spliced == inbox_read(user_id=bob.id, after=0)
        assert spliced[-1]["message"]["text"] == "changed since"
    finally:
        _migrate()
    # The function is 0007's again: a new send stores a reference.
    new_id = send(bob, conversation, "hello").json()["message"]["id"]
    assert _message_payloads()[-2:] == [{"message_id": new_id}] * 2
    assert api(bob).get("/api/v1/sync/", {"cursor": 0}).status_code == 200
