"""A message's inbox events keep the message's id, not a copy of it.

Until now each member's `message.new`, `.edited` and `.deleted` event held the
whole message. When its sender deleted it, or a moderator tombstoned it, the
message row lost its text but those copies did not: a device syncing from an
old cursor (REST sync or a socket's replay) was handed the deleted words, and
the text before an edit, for good (found in review, session 16). Now the
events store `{"message_id": id}` and a read puts in the message as it is then
(messaging.inbox); the live delivery still carries it as written.

`messaging_send_batch` is 0006's function with that one change to what its
events store. The events already stored are rewritten the same way; going
back rebuilds the copies from the messages as they are now.
"""

from importlib import import_module

from django.db import migrations

_0004 = import_module("messaging.migrations.0004_send_batch_index_plans")
_0006 = import_module("messaging.migrations.0006_send_batch_bounded")

_STORED_COPY = "jsonb_build_object('message', body)"
assert _0006.CREATE.count(_STORED_COPY) == 1
CREATE = _0006.CREATE.replace(_STORED_COPY, "jsonb_build_object('message_id', id)")

KINDS = ("message.new", "message.edited", "message.deleted")

TO_REFERENCES = """
UPDATE messaging_inboxevent
   SET payload = jsonb_build_object('message_id', (payload->'message'->>'id')::bigint)
 WHERE kind IN ('message.new', 'message.edited', 'message.deleted') AND payload ? 'message'
"""


def to_references(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TO_REFERENCES)
        return
    InboxEvent = apps.get_model("messaging", "InboxEvent")
    changed = []
    for event in InboxEvent.objects.filter(kind__in=KINDS).only("payload").iterator():
        copy = event.payload.get("message")
        if isinstance(copy, dict):
            event.payload = {"message_id": copy["id"]}
            changed.append(event)
    InboxEvent.objects.bulk_update(changed, ["payload"], batch_size=500)


def to_copies(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    from messaging import wire

    InboxEvent = apps.get_model("messaging", "InboxEvent")
    Message = apps.get_model("messaging", "Message")
    changed = []
    for event in InboxEvent.objects.filter(kind__in=KINDS).only("payload").iterator():
        message_id = event.payload.get("message_id")
        message = Message.objects.filter(pk=message_id).first() if message_id else None
        if message is not None:
            event.payload = {"message": wire.message_dict(message)}
            changed.append(event)
    InboxEvent.objects.bulk_update(changed, ["payload"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [("messaging", "0006_send_batch_bounded")]

    operations = [
        migrations.RunPython(_0004._on_postgresql(CREATE), _0004._on_postgresql(_0006.CREATE)),
        migrations.RunPython(to_references, to_copies),
    ]
