"""How fast can the send transaction itself go on this machine? (bench, not app code)

    python -m bench.micro_db            # after `make bench` (uses its chat_bench and setup)

Runs on CPU 0 (where the server runs) against the bench database and compares:

- `orm_no_delivery`: the real `messaging.services.message_send` in a loop on one
  thread, with its on_commit delivery switched off (in this process only; outside
  a server there is no event loop to deliver through) and the Celery push kept:
  what the shared DB thread could do if delivery left it (proposal 1);
- `sql_steps`: the same writes as raw SQL, one statement per step, one
  transaction per message (psycopg, one connection);
- `sql_cte`: all writes in one statement (data-modifying CTEs), one transaction
  per message: one round trip plus COMMIT;
- `sql_cte_batch_K`: K such statements pipelined in one transaction;
- `sql_cte_async_N`: N asyncio connections, one message per transaction each,
  concurrently (PostgreSQL's group commit).

The raw-SQL variants skip the membership and resend checks, so they are a lower
bound on the statement cost, not a drop-in replacement. Writes
bench/results/micro-db.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import psycopg

from bench import servers
from bench.run import SETUP_FILE

CTE = """
WITH conv AS (
  UPDATE messaging_conversation SET last_seq = last_seq + 1, last_activity_at = now()
  WHERE id = %(conv)s RETURNING id, last_seq
), msg AS (
  INSERT INTO messaging_message (conversation_id, seq, sender_id, client_msg_id, text, created_at)
  SELECT id, last_seq, %(sender)s, %(cmid)s, %(text)s, now() FROM conv
  RETURNING id, seq, created_at
), rd AS (
  UPDATE messaging_membership SET last_read_seq = (SELECT seq FROM msg)
  WHERE conversation_id = %(conv)s AND user_id = %(sender)s
), ib AS (
  UPDATE messaging_inbox SET last_seq = last_seq + 1
  WHERE user_id = ANY(%(members)s) RETURNING user_id, last_seq
), ev AS (
  INSERT INTO messaging_inboxevent (user_id, seq, kind, payload, created_at)
  SELECT ib.user_id, ib.last_seq, 'message.new',
         jsonb_build_object('message', jsonb_build_object(
             'id', msg.id, 'seq', msg.seq, 'sender_id', %(sender)s, 'text', %(text)s,
             'client_msg_id', %(cmid)s, 'created_at', msg.created_at)),
         now()
  FROM ib, msg
)
SELECT msg.id, msg.seq FROM msg
"""

STEPS = [
    "SELECT id, last_seq FROM messaging_conversation WHERE id = %(conv)s FOR UPDATE",
    "SELECT id FROM messaging_message WHERE conversation_id = %(conv)s AND sender_id = %(sender)s"
    " AND client_msg_id = %(cmid)s",
    "SELECT user_id FROM messaging_membership WHERE conversation_id = %(conv)s",
    "UPDATE messaging_conversation SET last_seq = last_seq + 1, last_activity_at = now()"
    " WHERE id = %(conv)s RETURNING last_seq",
    None,  # the insert, with the seq from the step before
    "UPDATE messaging_membership SET last_read_seq = last_read_seq + 1"
    " WHERE conversation_id = %(conv)s AND user_id = %(sender)s",
    "SELECT user_id, last_seq FROM messaging_inbox WHERE user_id = ANY(%(members)s)"
    " ORDER BY user_id FOR UPDATE",
    "UPDATE messaging_inbox SET last_seq = last_seq + 1 WHERE user_id = ANY(%(members)s)"
    " RETURNING user_id, last_seq",
]


def params(setup: dict, tag: str, n: int) -> list[dict]:
    pairs = setup["pairs"]
    out = []
    for i in range(n):
        pair = pairs[i % len(pairs)]
        out.append(
            {
                "conv": pair["conv"],
                "sender": pair["a_id"],
                "members": [pair["a_id"], pair["b_id"]],
                "cmid": f"{tag}.{i}",
                "text": f"micro bench message {i}",
            }
        )
    return out


def timed(name: str, count: int, fn) -> dict:
    started = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - started
    result = {
        "variant": name,
        "messages": count,
        "msgs_per_s": round(count / elapsed, 1),
        "ms_per_msg": round(elapsed * 1000 / count, 3),
    }
    print(f"  {name:24s} {result['msgs_per_s']:9.1f} msg/s  {result['ms_per_msg']:.3f} ms/msg")
    return result


def sql_steps(url: str, rows: list[dict]) -> None:
    with psycopg.connect(url) as conn:
        for row in rows:
            with conn.transaction():
                seq = None
                for step in STEPS:
                    if step is None:
                        conn.execute(
                            "INSERT INTO messaging_message (conversation_id, seq, sender_id,"
                            " client_msg_id, text, created_at)"
                            " VALUES (%(conv)s, %(seq)s, %(sender)s, %(cmid)s, %(text)s, now())"
                            " RETURNING id",
                            {**row, "seq": seq},
                        )
                        continue
                    cur = conn.execute(step, row)
                    if step.startswith("UPDATE messaging_conversation"):
                        seq = cur.fetchone()[0]
                    elif step.startswith("UPDATE messaging_inbox"):
                        bumped = cur.fetchall()
                conn.cursor().executemany(
                    "INSERT INTO messaging_inboxevent (user_id, seq, kind, payload, created_at)"
                    " VALUES (%s, %s, 'message.new', %s, now())",
                    [(u, s, json.dumps({"message": {"text": row["text"]}})) for u, s in bumped],
                )


def sql_cte(url: str, rows: list[dict], batch: int) -> None:
    with psycopg.connect(url) as conn:
        for start in range(0, len(rows), batch):
            with conn.transaction(), conn.pipeline():
                for row in rows[start : start + batch]:
                    conn.execute(CTE, row)


async def sql_cte_async(url: str, rows: list[dict], connections: int) -> None:
    async def worker(part: list[dict]) -> None:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            for row in part:
                async with conn.transaction():
                    await conn.execute(CTE, row)

    # Each connection gets its own conversations: no lock waits between them.
    parts: list[list[dict]] = [[] for _ in range(connections)]
    for row in rows:
        parts[row["conv"] % connections].append(row)
    await asyncio.gather(*(worker(p) for p in parts if p))


def orm_variants(setup: dict, n: int) -> list[dict]:
    os.environ.update(servers.ours_env())
    sys.path.insert(0, str(servers.OURS_SRC))
    import django

    django.setup()
    from messaging import inbox, services

    def run(rows: list[dict]) -> None:
        for row in rows:
            services.message_send(
                sender_id=row["sender"],
                conversation_id=row["conv"],
                client_msg_id=row["cmid"],
                text=row["text"],
            )

    results = []
    original = inbox.send_many_on_commit
    inbox.send_many_on_commit = lambda messages: None
    try:
        rows = params(setup, f"ornd{int(time.time())}", n + 20)
        run(rows[:20])  # warm up
        results.append(timed("orm_no_delivery", n, lambda: run(rows[20:])))
    finally:
        inbox.send_many_on_commit = original
    return results


def main() -> None:
    servers.OURS_SRC, sha = servers.snapshot("HEAD")
    setup = json.loads(Path(SETUP_FILE).read_text())
    url = servers.ours_env()["DATABASE_URL"]
    n = 600
    tag = f"m{int(time.time())}"
    print(f"send transaction micro-benchmark, ours at {sha}, {n} messages per variant")
    results = orm_variants(setup, n)
    results.append(timed("sql_steps", n, lambda: sql_steps(url, params(setup, tag + "s", n))))
    results.append(timed("sql_cte", n, lambda: sql_cte(url, params(setup, tag + "c", n), 1)))
    for batch in (10, 50):
        rows = params(setup, f"{tag}b{batch}", n)
        results.append(
            timed(f"sql_cte_batch_{batch}", n, lambda r=rows, b=batch: sql_cte(url, r, b))
        )
    for connections in (4, 16):
        rows = params(setup, f"{tag}a{connections}", n)
        results.append(
            timed(
                f"sql_cte_async_{connections}",
                n,
                lambda r=rows, c=connections: asyncio.run(sql_cte_async(url, r, c)),
            )
        )
    out = {"commit": sha, "cpu": "pinned to CPU 0 by the caller", "results": results}
    (servers.RESULTS / "micro-db.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
