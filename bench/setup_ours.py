"""Create the benchmark's users, tokens and conversations in the bench database.

Run with the same environment as the server under test:

    DJANGO_SETTINGS_MODULE=chatproject.settings DATABASE_URL=.../chat_bench \
        python -m bench.setup_ours --pairs 50 --idle 1000 --history 100000 --out FILE

Rows are bulk-created straight through the ORM (a fresh database, no events to
emit), tokens through the real `token_issue`, and the history conversation is
filled with one server-side INSERT ... SELECT over generate_series. Writes the
tokens and ids the load generator needs as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import time

import django

django.setup()

from django.db import connection, transaction  # noqa: E402

from accounts.models import User  # noqa: E402
from accounts.services import token_issue  # noqa: E402
from messaging.models import Conversation, Inbox, Membership, Message  # noqa: E402

UNUSABLE = "!bench"  # an unusable password hash: these users log in by token only


def make_users(prefix: str, count: int) -> list[tuple[int, str]]:
    users = User.objects.bulk_create(
        [User(username=f"{prefix}{i}", password=UNUSABLE) for i in range(count)]
    )
    Inbox.objects.bulk_create([Inbox(user=u) for u in users])
    return [(u.pk, token_issue(user=u)[1]) for u in users]


def direct(a: int, b: int) -> Conversation:
    low, high = sorted((a, b))
    conversation = Conversation.objects.create(
        kind=Conversation.Kind.DIRECT, direct_key=f"{low}:{high}", created_by_id=a
    )
    Membership.objects.bulk_create(
        [Membership(conversation=conversation, user_id=u) for u in (low, high)]
    )
    return conversation


def seed_history(conversation: Conversation, sender_id: int, count: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Message._meta.db_table}
                (conversation_id, seq, sender_id, client_msg_id, text, created_at)
            SELECT %s, g, %s, 'seed-' || g,
                   'history message number ' || g || ' with some ordinary chat text',
                   now() - (%s - g) * interval '1 second'
            FROM generate_series(1, %s) AS g
            """,
            [conversation.pk, sender_id, count, count],
        )
    Conversation.objects.filter(pk=conversation.pk).update(last_seq=count)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--group", type=int, default=100)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    started = time.monotonic()
    out: dict = {}
    with transaction.atomic():
        a_side = make_users("pa", args.pairs)
        b_side = make_users("pb", args.pairs)
        out["pairs"] = [
            {"a_id": a, "a": ta, "b_id": b, "b": tb, "conv": direct(a, b).pk}
            for (a, ta), (b, tb) in zip(a_side, b_side, strict=True)
        ]
        members = make_users("g", args.group)
        group = Conversation.objects.create(
            kind=Conversation.Kind.GROUP, title="bench group", created_by_id=members[0][0]
        )
        Membership.objects.bulk_create(
            [
                Membership(
                    conversation=group,
                    user_id=uid,
                    role=Membership.Role.OWNER if i == 0 else Membership.Role.MEMBER,
                )
                for i, (uid, _) in enumerate(members)
            ]
        )
        out["group"] = {"conv": group.pk, "members": [{"id": u, "token": t} for u, t in members]}
        out["idle"] = [t for _, t in make_users("idle", args.idle)]
        (ra, ta), (rb, tb) = make_users("ra", 1)[0], make_users("rb", 1)[0]
        out["reconnect"] = {"a_id": ra, "a": ta, "b_id": rb, "b": tb, "conv": direct(ra, rb).pk}
        (ha, tha), (hb, _) = make_users("ha", 1)[0], make_users("hb", 1)[0]
        history = direct(ha, hb)
    # Outside the user transaction: one big statement of its own.
    seed_history(history, ha, args.history)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    out["history"] = {"conv": history.pk, "token": tha, "count": args.history}
    out["setup_s"] = round(time.monotonic() - started, 1)
    with open(args.out, "w") as fh:
        json.dump(out, fh)
    print(
        f"setup: {args.pairs} pairs, group of {args.group}, {args.idle} idle users, "
        f"{args.history} history messages in {out['setup_s']} s"
    )


if __name__ == "__main__":
    main()
