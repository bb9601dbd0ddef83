"""`messaging_send_batch` with plans that do not grow with the tables.

Measured with auto_explain on the benchmark database (docs/benchmarks.md):
PostgreSQL plans the function's statements once, for an unknown batch, and
guesses 100 input rows. For 0003's membership check that meant hashing every
membership joined to every user (0.2 ms per call on 1,200 users, and growing
with them), and for the inbox lock a scan of every inbox row. Here the
members are read once into an array (index scans on `= ANY(array)`), and the
membership check is a LATERAL with LIMIT, which stays two index probes per
send. The function's settings keep one plan per statement and rule out
sequential scans (the remaining UPDATEs joined to CTEs hashed whole tables).
A batch of one went from 0.89 to 0.68 ms with the settings, and from 1.10
with 0003 (p50, commit included, 1,200 users).
Rules and result rows are those of 0002/0003; as there, a batch must not
hold the same (conversation, sender, client_msg_id) twice (the caller answers
repeats from the first: messaging/send_queue.py).
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION messaging_send_batch(sends jsonb, ts timestamptz, ts_text text)
RETURNS TABLE (status text, message_id bigint, message jsonb, user_ids bigint[], cursors bigint[])
LANGUAGE plpgsql
-- Plan each statement once (re-planning for each call's parameters cost more
-- than it won), and plan it for what a batch is: a few rows, each reached by
-- index. Guessing 100 input rows, the planner otherwise hashed whole tables
-- (conversations, inboxes, memberships) for a batch of one.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $fn$
DECLARE
    conv_ids bigint[];
    member_ids bigint[];
BEGIN
    SELECT array_agg(DISTINCT (e->>'conversation_id')::bigint) INTO conv_ids
      FROM jsonb_array_elements(sends) e;
    -- Lock order as everywhere: conversations by id, then inboxes by user id.
    PERFORM 1 FROM messaging_conversation WHERE id = ANY(conv_ids) ORDER BY id FOR UPDATE;
    SELECT array_agg(DISTINCT m.user_id ORDER BY m.user_id) INTO member_ids
      FROM messaging_membership m WHERE m.conversation_id = ANY(conv_ids);
    INSERT INTO messaging_inbox (user_id, last_seq)
    SELECT u, 0 FROM unnest(member_ids) u
     WHERE NOT EXISTS (SELECT 1 FROM messaging_inbox i WHERE i.user_id = u)
     ORDER BY u
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM messaging_inbox WHERE user_id = ANY(member_ids) ORDER BY user_id FOR UPDATE;

    RETURN QUERY
    WITH input AS (
        SELECT t.ord, (t.e->>'conversation_id')::bigint AS conv,
               (t.e->>'sender_id')::bigint AS sender, t.e->>'client_msg_id' AS cmid,
               t.e->>'text' AS txt
          FROM jsonb_array_elements(sends) WITH ORDINALITY AS t(e, ord)
    ), existing AS (
        SELECT i.ord, m.id
          FROM input i
          JOIN messaging_message m
            ON m.conversation_id = i.conv AND m.sender_id = i.sender AND m.client_msg_id = i.cmid
    ), allowed AS (
        SELECT i.*,
               row_number() OVER (PARTITION BY i.conv ORDER BY i.ord) AS k,
               count(*) OVER (PARTITION BY i.conv) AS n
          FROM input i
         CROSS JOIN LATERAL (
               -- LATERAL with LIMIT: two index probes per send, never a hash
               -- of every membership (the planner guesses 100 input rows).
               SELECT 1 FROM messaging_membership mm
                 JOIN accounts_user u ON u.id = mm.user_id
                WHERE mm.conversation_id = i.conv AND mm.user_id = i.sender AND u.is_active
                LIMIT 1) member
         WHERE NOT EXISTS (SELECT 1 FROM existing x WHERE x.ord = i.ord)
    ), conv_bumped AS (
        UPDATE messaging_conversation c
           SET last_seq = c.last_seq + x.n, last_activity_at = ts
          FROM (SELECT DISTINCT conv, n FROM allowed) x
         WHERE c.id = x.conv
        RETURNING c.id, c.last_seq AS new_last
    ), numbered AS (
        SELECT a.*, b.new_last - a.n + a.k AS seq
          FROM allowed a JOIN conv_bumped b ON b.id = a.conv
    ), inserted AS (
        INSERT INTO messaging_message (conversation_id, seq, sender_id, client_msg_id, text, created_at)
        SELECT conv, seq, sender, cmid, txt, ts FROM numbered
        RETURNING id, conversation_id, seq
    ), created AS (
        -- The same shape as messaging.wire.message_dict.
        SELECT nb.ord, ins.id, nb.conv, nb.seq, nb.sender,
               jsonb_build_object(
                   'id', ins.id, 'conversation_id', nb.conv, 'seq', nb.seq,
                   'sender_id', nb.sender, 'text', nb.txt, 'client_msg_id', nb.cmid,
                   'created_at', ts_text, 'edited_at', NULL, 'deleted', false) AS body
          FROM numbered nb
          JOIN inserted ins ON ins.conversation_id = nb.conv AND ins.seq = nb.seq
    ), read_marks AS (
        -- Sending implies having read everything before it.
        UPDATE messaging_membership mm SET last_read_seq = x.seq
          FROM (SELECT conv, sender, max(seq) AS seq FROM created GROUP BY conv, sender) x
         WHERE mm.conversation_id = x.conv AND mm.user_id = x.sender
        RETURNING 1
    ), deliveries AS (
        SELECT c.ord, c.id, c.body, mm.user_id,
               row_number() OVER (PARTITION BY mm.user_id ORDER BY c.ord) AS k,
               count(*) OVER (PARTITION BY mm.user_id) AS n
          FROM created c JOIN messaging_membership mm ON mm.conversation_id = c.conv
    ), inbox_bumped AS (
        UPDATE messaging_inbox i SET last_seq = i.last_seq + x.n
          FROM (SELECT DISTINCT user_id, n FROM deliveries) x
         WHERE i.user_id = x.user_id
        RETURNING i.user_id, i.last_seq AS new_last
    ), events AS (
        SELECT d.ord, d.id, d.body, d.user_id, b.new_last - d.n + d.k AS cur_seq
          FROM deliveries d JOIN inbox_bumped b ON b.user_id = d.user_id
    ), events_inserted AS (
        INSERT INTO messaging_inboxevent (user_id, seq, kind, payload, created_at)
        SELECT user_id, cur_seq, 'message.new', jsonb_build_object('message', body), ts
          FROM events
        RETURNING 1
    )
    SELECT CASE WHEN x.id IS NOT NULL THEN 'duplicate'
                WHEN c.id IS NOT NULL THEN 'created'
                ELSE 'not_found' END,
           coalesce(x.id, c.id),
           c.body,
           (SELECT array_agg(ev.user_id ORDER BY ev.user_id) FROM events ev WHERE ev.ord = i.ord),
           (SELECT array_agg(ev.cur_seq ORDER BY ev.user_id) FROM events ev WHERE ev.ord = i.ord)
      FROM input i
      LEFT JOIN existing x ON x.ord = i.ord
      LEFT JOIN created c ON c.ord = i.ord
     ORDER BY i.ord;
END
$fn$;
"""


def _on_postgresql(sql: str):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


def _previous(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    from importlib import import_module

    previous = import_module("messaging.migrations.0003_send_batch_set_based")
    _on_postgresql(previous.CREATE)(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("messaging", "0003_send_batch_set_based")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _previous)]
