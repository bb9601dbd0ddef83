"""`messaging_send_batch`: store a batch of messages in one statement.

On PostgreSQL every send (socket or REST) goes through this function: one
round trip stores a whole batch, where the ORM needed ~10 statements per
message (docs/benchmarks.md). `messaging.services._message_send_orm` does the
same for other databases and documents the rules in Python; a parity test
runs both on PostgreSQL.

Rules, as in the ORM version:
- Lock order: the batch's conversations by id, then its members' inboxes by
  user id. Every other writer locks one conversation, then inboxes by user
  id, so batches and single writes never wait on each other in a cycle.
- A send whose (conversation, sender, client_msg_id) is stored already is a
  'duplicate' (checked under the conversation lock, before membership: a
  stored message is acknowledged on resend even after leaving).
- Otherwise the sender must be an active member, or it is 'not_found'.
- A new message takes the conversation's next seq, advances the sender's
  read marker and appends `message.new` to every member's inbox.
A bad send never fails the others: each gets its own status row.
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION messaging_send_batch(sends jsonb, ts timestamptz, ts_text text)
RETURNS TABLE (status text, message_id bigint, message jsonb, user_ids bigint[], cursors bigint[])
LANGUAGE plpgsql AS $fn$
DECLARE
    s jsonb;
    conv bigint;
    sender bigint;
    cmid text;
    new_seq bigint;
    body jsonb;
    conv_ids bigint[];
BEGIN
    SELECT array_agg(DISTINCT (e->>'conversation_id')::bigint) INTO conv_ids
      FROM jsonb_array_elements(sends) e;
    PERFORM 1 FROM messaging_conversation WHERE id = ANY(conv_ids) ORDER BY id FOR UPDATE;
    -- Members who never had an event get an inbox row (rare: joining appends one).
    INSERT INTO messaging_inbox (user_id, last_seq)
    SELECT DISTINCT m.user_id, 0 FROM messaging_membership m
     WHERE m.conversation_id = ANY(conv_ids)
       AND NOT EXISTS (SELECT 1 FROM messaging_inbox i WHERE i.user_id = m.user_id)
     ORDER BY m.user_id
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM messaging_inbox
     WHERE user_id IN (SELECT m.user_id FROM messaging_membership m
                        WHERE m.conversation_id = ANY(conv_ids))
     ORDER BY user_id FOR UPDATE;

    FOR s IN SELECT value FROM jsonb_array_elements(sends) LOOP
        conv := (s->>'conversation_id')::bigint;
        sender := (s->>'sender_id')::bigint;
        cmid := s->>'client_msg_id';
        message := NULL; user_ids := NULL; cursors := NULL;

        SELECT m.id INTO message_id FROM messaging_message m
         WHERE m.conversation_id = conv AND m.sender_id = sender AND m.client_msg_id = cmid;
        IF FOUND THEN
            status := 'duplicate';
            RETURN NEXT;
            CONTINUE;
        END IF;
        message_id := NULL;

        PERFORM 1 FROM messaging_membership m JOIN accounts_user u ON u.id = m.user_id
         WHERE m.conversation_id = conv AND m.user_id = sender AND u.is_active;
        IF NOT FOUND THEN
            status := 'not_found';
            RETURN NEXT;
            CONTINUE;
        END IF;

        UPDATE messaging_conversation SET last_seq = last_seq + 1, last_activity_at = ts
         WHERE id = conv RETURNING last_seq INTO new_seq;
        INSERT INTO messaging_message (conversation_id, seq, sender_id, client_msg_id, text, created_at)
        VALUES (conv, new_seq, sender, cmid, s->>'text', ts)
        RETURNING id INTO message_id;
        -- Sending implies having read everything before it.
        UPDATE messaging_membership SET last_read_seq = new_seq
         WHERE conversation_id = conv AND user_id = sender;

        -- The same shape as messaging.wire.message_dict.
        body := jsonb_build_object(
            'id', message_id, 'conversation_id', conv, 'seq', new_seq, 'sender_id', sender,
            'text', s->>'text', 'client_msg_id', cmid, 'created_at', ts_text,
            'edited_at', NULL, 'deleted', false);
        WITH bumped AS (
            UPDATE messaging_inbox i SET last_seq = i.last_seq + 1
              FROM messaging_membership m
             WHERE m.conversation_id = conv AND i.user_id = m.user_id
            RETURNING i.user_id, i.last_seq
        ), added AS (
            INSERT INTO messaging_inboxevent (user_id, seq, kind, payload, created_at)
            SELECT b.user_id, b.last_seq, 'message.new', jsonb_build_object('message', body), ts
              FROM bumped b
            RETURNING user_id, seq
        )
        SELECT array_agg(a.user_id ORDER BY a.user_id), array_agg(a.seq ORDER BY a.user_id)
          INTO user_ids, cursors FROM added a;
        status := 'created';
        message := body;
        RETURN NEXT;
    END LOOP;
END
$fn$;
"""

DROP = "DROP FUNCTION IF EXISTS messaging_send_batch(jsonb, timestamptz, text);"


def _on_postgresql(sql: str):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("messaging", "0001_initial")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]
