"""`messaging_send_batch` with every table access bounded by the batch.

Measured on the benchmark database with auto_explain (docs/benchmarks.md,
session 11), 0004's generic plans still depended on guesses:

- the plan of a statement follows the row estimates of the CTEs before it, so
  a small change (dropping a join) flipped the inbox UPDATE and the inbox
  INSERT into merge joins over the whole inbox index: 1,000 index entries read
  for a send to two users, growing with the users;
- the result's per-send arrays came from two subqueries over all the batch's
  events for each send: at 200 sends and 400 events, 160,000 rows visited,
  a third of the statement.

Here each UPDATE, INSERT ... NOT EXISTS and join to a table also carries the
batch's own keys (`= ANY(conv_ids)`, `= ANY(member_ids)`, index conditions), so
whichever join the planner picks reads only the batch's rows; nested loops are
off (a nested loop between two CTEs is quadratic in the batch) except where a
LATERAL ... LIMIT 1 makes it the only plan, two index probes per send; the
per-send arrays are grouped once; message ids are drawn before the insert, so
nothing joins the inserted rows back. JIT is off: the nested-loop penalty
inflates the plans' costs past `jit_above_cost`, and compiling cost 0.9 s.

Batch of 200 sends (two users each), p50 with commit: 28-30 ms before, 21-22
after, 18.5 with migration 0005's indexes gone; batch of one 0.65 → 0.63 ms.
Rules and result rows are those of 0002-0004; as there, a batch must not hold
the same (conversation, sender, client_msg_id) twice (the caller answers
repeats from the first: messaging/send_queue.py).
"""

from importlib import import_module

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION messaging_send_batch(sends jsonb, ts timestamptz, ts_text text)
RETURNS TABLE (status text, message_id bigint, message jsonb, user_ids bigint[], cursors bigint[])
LANGUAGE plpgsql
-- Plan each statement once, for what a batch is: a few rows, each reached by
-- index through the batch's keys.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_nestloop = off
SET jit = off
AS $fn$
DECLARE
    conv_ids bigint[];
    member_ids bigint[];
BEGIN
    SELECT array_agg(DISTINCT (e->>'conversation_id')::bigint) INTO conv_ids
      FROM jsonb_array_elements(sends) e;
    -- Lock order as everywhere: conversations by id, then inboxes by user id.
    PERFORM 1 FROM messaging_conversation WHERE id = ANY(conv_ids) ORDER BY id FOR UPDATE;
    -- Read under the conversations' locks: every membership change takes the
    -- conversation's lock first (messaging.services), so no member can join
    -- between this and the statement below, whose inbox writes it bounds.
    SELECT array_agg(DISTINCT m.user_id ORDER BY m.user_id) INTO member_ids
      FROM messaging_membership m WHERE m.conversation_id = ANY(conv_ids);
    INSERT INTO messaging_inbox (user_id, last_seq)
    SELECT u, 0 FROM unnest(member_ids) u
     WHERE NOT EXISTS (SELECT 1 FROM messaging_inbox i
                        WHERE i.user_id = u AND i.user_id = ANY(member_ids))
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
         CROSS JOIN LATERAL (
               SELECT m.id FROM messaging_message m
                WHERE m.conversation_id = i.conv AND m.sender_id = i.sender
                  AND m.client_msg_id = i.cmid
                LIMIT 1) m
    ), allowed AS (
        SELECT i.*,
               row_number() OVER (PARTITION BY i.conv ORDER BY i.ord) AS k,
               count(*) OVER (PARTITION BY i.conv) AS n
          FROM input i
         CROSS JOIN LATERAL (
               SELECT 1 FROM messaging_membership mm
                 JOIN accounts_user u ON u.id = mm.user_id
                WHERE mm.conversation_id = i.conv AND mm.user_id = i.sender AND u.is_active
                LIMIT 1) member
         WHERE NOT EXISTS (SELECT 1 FROM existing x WHERE x.ord = i.ord)
    ), conv_bumped AS (
        UPDATE messaging_conversation c
           SET last_seq = c.last_seq + x.n, last_activity_at = ts
          FROM (SELECT DISTINCT conv, n FROM allowed) x
         WHERE c.id = x.conv AND c.id = ANY(conv_ids)
        RETURNING c.id, c.last_seq AS new_last
    ), numbered AS (
        SELECT a.*, b.new_last - a.n + a.k AS seq,
               nextval('messaging_message_id_seq') AS id
          FROM allowed a JOIN conv_bumped b ON b.id = a.conv
    ), inserted AS (
        INSERT INTO messaging_message
               (id, conversation_id, seq, sender_id, client_msg_id, text, created_at)
        SELECT id, conv, seq, sender, cmid, txt, ts FROM numbered
    ), created AS (
        -- The same shape as messaging.wire.message_dict.
        SELECT nb.ord, nb.id, nb.conv, nb.seq, nb.sender,
               jsonb_build_object(
                   'id', nb.id, 'conversation_id', nb.conv, 'seq', nb.seq,
                   'sender_id', nb.sender, 'text', nb.txt, 'client_msg_id', nb.cmid,
                   'created_at', ts_text, 'edited_at', NULL, 'deleted', false) AS body
          FROM numbered nb
    ), read_marks AS (
        -- Sending implies having read everything before it.
        UPDATE messaging_membership mm SET last_read_seq = x.seq
          FROM (SELECT conv, sender, max(seq) AS seq FROM created GROUP BY conv, sender) x
         WHERE mm.conversation_id = x.conv AND mm.user_id = x.sender
           AND mm.conversation_id = ANY(conv_ids)
    ), deliveries AS (
        SELECT c.ord, c.id, c.body, mm.user_id,
               row_number() OVER (PARTITION BY mm.user_id ORDER BY c.ord) AS k,
               count(*) OVER (PARTITION BY mm.user_id) AS n
          FROM created c JOIN messaging_membership mm ON mm.conversation_id = c.conv
         WHERE mm.conversation_id = ANY(conv_ids)
    ), inbox_bumped AS (
        UPDATE messaging_inbox i SET last_seq = i.last_seq + x.n
          FROM (SELECT DISTINCT user_id, n FROM deliveries) x
         WHERE i.user_id = x.user_id AND i.user_id = ANY(member_ids)
        RETURNING i.user_id, i.last_seq AS new_last
    ), events AS (
        SELECT d.ord, d.id, d.body, d.user_id, b.new_last - d.n + d.k AS cur_seq
          FROM deliveries d JOIN inbox_bumped b ON b.user_id = d.user_id
    ), events_inserted AS (
        INSERT INTO messaging_inboxevent (user_id, seq, kind, payload, created_at)
        SELECT user_id, cur_seq, 'message.new', jsonb_build_object('message', body), ts
          FROM events
    ), per_send AS (
        SELECT ev.ord, array_agg(ev.user_id ORDER BY ev.user_id) AS user_ids,
               array_agg(ev.cur_seq ORDER BY ev.user_id) AS cursors
          FROM events ev GROUP BY ev.ord
    )
    SELECT CASE WHEN x.id IS NOT NULL THEN 'duplicate'
                WHEN c.id IS NOT NULL THEN 'created'
                ELSE 'not_found' END,
           coalesce(x.id, c.id),
           c.body, p.user_ids, p.cursors
      FROM input i
      LEFT JOIN existing x ON x.ord = i.ord
      LEFT JOIN created c ON c.ord = i.ord
      LEFT JOIN per_send p ON p.ord = i.ord
     ORDER BY i.ord;
END
$fn$;
"""


# 0004's function is what a rollback restores; its helper runs SQL on PostgreSQL only.
_0004 = import_module("messaging.migrations.0004_send_batch_index_plans")


class Migration(migrations.Migration):
    dependencies = [("messaging", "0005_write_path_indexes")]

    operations = [
        migrations.RunPython(_0004._on_postgresql(CREATE), _0004._on_postgresql(_0004.CREATE))
    ]
