"""Two indexes every send paid for and no query needed (docs/benchmarks.md,
session 11).

- `Conversation.last_activity_at`: each send sets it, and while it was indexed
  that UPDATE could not be heap-only (HOT), so it wrote a new entry into each of
  the table's five indexes. A user's conversation list reaches its rows through
  the user's memberships, not through this index.
- `Message.conversation`: the unique constraints `one_seq` and
  `idempotent_send` both start with the column, so its own index was a third
  copy, written on every insert.

Only the indexes are dropped: Django's AlterField would also drop and re-add the
foreign key, which re-checks every stored message under a lock.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = [
    # (name Django gave the index, how to create it again)
    (
        "messaging_conversation_last_activity_at_a276d931",
        'CREATE INDEX "messaging_conversation_last_activity_at_a276d931"'
        ' ON "messaging_conversation" ("last_activity_at")',
    ),
    (
        "messaging_message_conversation_id_3db4d3d1",
        'CREATE INDEX "messaging_message_conversation_id_3db4d3d1"'
        ' ON "messaging_message" ("conversation_id")',
    ),
]


class Migration(migrations.Migration):
    dependencies = [("messaging", "0004_send_batch_index_plans")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{name}"', create)
                for name, create in INDEXES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="conversation",
                    name="last_activity_at",
                    field=models.DateTimeField(auto_now_add=True),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="conversation",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="messaging.conversation",
                    ),
                ),
            ],
        )
    ]
