"""A message's inbox events keep the message's id, not a copy of it.

Until now each member's `message.new`, `.edited` and `.deleted` event held the
whole message. When its sender deleted it, or a moderator tombstoned it, the
message row lost its text but those copies did not: a device syncing from an
old cursor (REST sync or a socket's replay) was handed the deleted words, and
the text before an edit, for good (found in review, session 16). Now the
events store `{"message_id": id}` and a read puts in the message as it is then
(messaging.inbox); the live delivery still carries it as written.

`messaging_send_batch` is 0006's function with that one change to what its
events store. The events already stored are rewritten the same way, by ranges
of ids; going back rebuilds the copies from the messages as they are now.

Stop every chat and API server of the earlier version before migrating
(docs/operations.md): an old process would hand out the stored references as
they are, without the message.
"""

from importlib import import_module

from django.db import migrations, transaction

_0004 = import_module("messaging.migrations.0004_send_batch_index_plans")
_0006 = import_module("messaging.migrations.0006_send_batch_bounded")

_STORED_COPY = "jsonb_build_object('message', body)"
assert _0006.CREATE.count(_STORED_COPY) == 1
CREATE = _0006.CREATE.replace(_STORED_COPY, "jsonb_build_object('message_id', id)")

KINDS = ("message.new", "message.edited", "message.deleted")
# Rows per statement: the rewrite is many short transactions, not one that
# holds every row of a big inbox table at once.
CHUNK = 10_000

TO_REFERENCES = """
UPDATE messaging_inboxevent
   SET payload = jsonb_build_object('message_id', (payload->'message'->>'id')::bigint)
 WHERE id > %s AND id <= %s
   AND kind IN ('message.new', 'message.edited', 'message.deleted') AND payload ? 'message'
"""


def _id_ranges(InboxEvent):  # type: ignore[no-untyped-def]
    # Up to the highest id when the range is reached: rows written meanwhile
    # by the new function are references already.
    done = 0
    while True:
        top = InboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        if done >= top:
            return
        yield done, min(done + CHUNK, top)
        done = min(done + CHUNK, top)


def to_references(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    InboxEvent = apps.get_model("messaging", "InboxEvent")
    for low, high in _id_ranges(InboxEvent):
        with transaction.atomic():
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.execute(TO_REFERENCES, (low, high))
                continue
            changed = []
            events = InboxEvent.objects.filter(id__gt=low, id__lte=high, kind__in=KINDS)
            for event in events.only("payload"):
                copy = event.payload.get("message")
                if isinstance(copy, dict):
                    event.payload = {"message_id": copy["id"]}
                    changed.append(event)
            InboxEvent.objects.bulk_update(changed, ["payload"])


def to_copies(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    from messaging import wire

    InboxEvent = apps.get_model("messaging", "InboxEvent")
    Message = apps.get_model("messaging", "Message")
    for low, high in _id_ranges(InboxEvent):
        with transaction.atomic():
            events = InboxEvent.objects.filter(id__gt=low, id__lte=high, kind__in=KINDS)
            events = [e for e in events.only("payload") if "message_id" in e.payload]
            messages = Message.objects.in_bulk([e.payload["message_id"] for e in events])
            changed = []
            for event in events:
                message = messages.get(event.payload["message_id"])
                if message is not None:
                    event.payload = {"message": wire.message_dict(message)}
                    changed.append(event)
            InboxEvent.objects.bulk_update(changed, ["payload"])


class Migration(migrations.Migration):
    # The stored events are rewritten in many short transactions (CHUNK).
    atomic = False

    dependencies = [("messaging", "0006_send_batch_bounded")]

    operations = [
        migrations.RunPython(_0004._on_postgresql(CREATE), _0004._on_postgresql(_0006.CREATE)),
        migrations.RunPython(to_references, to_copies),
    ]
