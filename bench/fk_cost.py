"""What do the foreign keys cost the send function? (bench, not app code)

    python -m bench.fk_cost      # PostgreSQL at DATABASE_URL's server; ~1 minute

Creates a scratch database (`chat_fk_cost`), migrates it, and times
`messaging_send_batch` with commit, as the send queue calls it, for three
shapes: one 1:1 send, a batch of 20 1:1 sends (the batches the queue forms at
3,000-4,000 msg/s) and one send to a 100-member group. Each shape runs with
the foreign keys of `messaging_message` and `messaging_inboxevent` in place,
then without them, four rounds, each side first in two. The scratch database is
dropped at the end. Writes bench/results/fk-cost.json.

Pin it where the server runs for numbers comparable with the sweep:
`taskset -c 0 python -m bench.fk_cost`.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

import psycopg

SCRATCH = "chat_fk_cost"
ROUNDS = 4  # even: each side goes first equally often
SHAPES = (("direct", 1, 300), ("direct", 20, 200), ("group", 1, 100))
FOREIGN_KEYS = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE contype = 'f' AND conrelid::regclass::text IN ('messaging_message', 'messaging_inboxevent')
"""
OUT = Path(__file__).parent / "results" / "fk-cost.json"


def _admin_url() -> str:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    return url.rsplit("/", 1)[0] + "/postgres"


def _setup_django() -> None:
    os.environ["DATABASE_URL"] = _admin_url().rsplit("/", 1)[0] + "/" + SCRATCH
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _cast() -> tuple[list[Any], list[Any], Any]:
    from accounts.models import User
    from messaging import services

    users = [User.objects.create_user(username=f"u{i}", password="x") for i in range(300)]
    direct = [
        services.conversation_direct_get_or_create(
            user=users[2 * i], other_user_id=users[2 * i + 1].id
        )
        for i in range(50)
    ]
    group = services.conversation_group_create(
        owner=users[200], title="hundred", member_ids=[u.id for u in users[201:300]]
    )
    return users, [c[0] if isinstance(c, tuple) else c for c in direct], group


def _sends(users: list[Any], direct: list[Any], group: Any, kind: str, k: int) -> list[Any]:
    from messaging.send_store import Send

    sends = []
    for j in range(k):
        conversation, sender = (
            (direct[j % 50], users[2 * (j % 50)]) if kind == "direct" else (group, users[200])
        )
        sends.append(Send(conversation.id, sender.id, uuid.uuid4().hex, "hello there " * 3))
    return sends


def _time(conn: psycopg.Connection, make_batch: Any, count: int) -> dict[str, float]:
    from django.utils import timezone

    from messaging import send_store

    times = []
    for _ in range(count):
        sends = make_batch()
        started = time.perf_counter()
        rows = conn.execute(send_store.SQL, send_store.params(sends, timezone.now())).fetchall()
        times.append((time.perf_counter() - started) * 1000)
        assert all(row[0] == "created" for row in rows), rows[:1]
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p90_ms": round(times[len(times) * 9 // 10], 3),
    }


def _set_keys(conn: psycopg.Connection, keys: list[tuple[str, str, str]], present: bool) -> None:
    there = {name for _, name, _ in conn.execute(FOREIGN_KEYS).fetchall()}
    for table, name, definition in keys:
        if present and name not in there:
            conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
        elif not present and name in there:
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")


def main() -> None:
    with psycopg.connect(_admin_url(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")
        admin.execute(f"CREATE DATABASE {SCRATCH}")
    try:
        _setup_django()
        users, direct, group = _cast()
        from messaging.send_queue import psycopg_params

        results: dict[str, list[dict[str, float]]] = {}
        with psycopg.connect(**psycopg_params(), autocommit=True) as conn:
            keys = conn.execute(FOREIGN_KEYS).fetchall()
            for round_ in range(ROUNDS):
                # Alternating which goes first, so drift over the run
                # does not favour one side.
                for with_keys in (True, False) if round_ % 2 == 0 else (False, True):
                    _set_keys(conn, keys, present=with_keys)
                    for kind, k, count in SHAPES:
                        label = f"{kind}_{k}_{'fk' if with_keys else 'no_fk'}"
                        timing = _time(
                            conn,
                            lambda kind=kind, k=k: _sends(users, direct, group, kind, k),
                            count,
                        )
                        results.setdefault(label, []).append(timing)
                        print(
                            f"round {round_} {label:20s} p50 {timing['p50_ms']:.3f} ms", flush=True
                        )
        OUT.write_text(json.dumps({"rounds": ROUNDS, "results": results}, indent=1) + "\n")
        print(f"wrote {OUT}")
    finally:
        with suppress(Exception):  # Django may not have started
            from django.db import connections

            connections.close_all()
        with psycopg.connect(_admin_url(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")


if __name__ == "__main__":
    main()
