"""The send function's work follows the batch, not the tables.

A plan that walks a whole index, or compares every send of a batch with every
event, gives the right answer and is quick on a test database of ten rows; on
a server with a million users it is what makes every message slow.
auto_explain reports what each statement inside `messaging_send_batch` really
read, and these tests bound it by the size of the batch (migration 0006;
docs/benchmarks.md, session 11).
"""

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import User
from messaging import send_store
from messaging.models import Conversation, Inbox, Membership, Message
from messaging.send_queue import psycopg_params
from messaging.send_store import Send

pytestmark = pytest.mark.django_db(transaction=True)

# Enough that reading a whole table or index is far past any bound below.
USERS = 2_000


@pytest.fixture
def pairs() -> list[tuple[int, int, int]]:
    """(conversation, user, other user) for USERS / 2 direct conversations,
    each with one stored message."""
    users = User.objects.bulk_create(User(username=f"plan{i}") for i in range(USERS))
    Inbox.objects.bulk_create(Inbox(user=u) for u in users)
    twos = list(zip(users[0::2], users[1::2], strict=True))
    conversations = Conversation.objects.bulk_create(
        Conversation(kind="direct", direct_key=f"{a.id}:{b.id}") for a, b in twos
    )
    Membership.objects.bulk_create(
        Membership(conversation=c, user=u)
        for c, pair in zip(conversations, twos, strict=True)
        for u in pair
    )
    Message.objects.bulk_create(
        Message(conversation=c, seq=1, sender=a, client_msg_id="first", text="hi")
        for c, (a, _) in zip(conversations, twos, strict=True)
    )
    Conversation.objects.update(last_seq=1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return [(c.id, a.id, b.id) for c, (a, b) in zip(conversations, twos, strict=True)]


def _plans(sends: list[Send]) -> list[dict[str, Any]]:
    """Store `sends` in one call on a new session; what auto_explain logged
    for every statement the call ran: the query's text and its plan with
    actual row counts."""
    logged: list[str] = []
    # LOAD needs a superuser, as the test database's owner is under `make test`.
    with psycopg.connect(**psycopg_params(), autocommit=True) as conn:
        conn.add_notice_handler(lambda diag: logged.append(diag.message_primary or ""))
        conn.execute("LOAD 'auto_explain'")
        for setting, value in [
            ("auto_explain.log_min_duration", "0"),
            ("auto_explain.log_analyze", "on"),
            ("auto_explain.log_timing", "off"),
            ("auto_explain.log_nested_statements", "on"),
            ("auto_explain.log_format", "json"),
            ("client_min_messages", "log"),
        ]:
            conn.execute(f"SET {setting} = {value}")
        rows = conn.execute(send_store.SQL, send_store.params(sends, timezone.now())).fetchall()
    assert [row[0] for row in rows] == ["created"] * len(sends)
    # "duration: 0.123 ms  plan:\n{...}"
    return [json.loads(m[m.index("{") :]) for m in logged if "plan:" in m]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _rows_read(node: dict[str, Any]) -> float:
    """Rows a plan node produced or looked at and threw away, over all its loops."""
    per_loop = (
        node["Actual Rows"]
        + node.get("Rows Removed by Filter", 0)
        + node.get("Rows Removed by Join Filter", 0)
        + node.get("Rows Removed by Index Recheck", 0)
    )
    return per_loop * node["Actual Loops"]


def _busiest(explained: list[dict[str, Any]]) -> tuple[float, str]:
    return max(
        (_rows_read(node), f"{node['Node Type']} {node.get('Relation Name', '')}".strip())
        for one in explained
        for node in _nodes(one["Plan"])
    )


@pytest.mark.parametrize("batch", [1, 40])
def test_a_send_batch_reads_rows_of_its_own_sends_not_of_every_user(pairs, batch):
    # The newest conversations: a merge join walks an index from its start,
    # so sends to its first entries would hide one.
    sends = [Send(c, a, f"m{i}", "hello") for i, (c, a, _) in enumerate(pairs[-batch:])]
    events = 2 * batch  # one per member of each direct conversation

    explained = _plans(sends)

    # The function's own statements were seen, not only the foreign-key checks
    # (one query per inserted row) that also run inside the call.
    texts = [one["Query Text"] for one in explained if "FOR KEY SHARE" not in one["Query Text"]]
    assert any("WITH input AS" in text for text in texts)
    assert sum("messaging_inbox" in text for text in texts) >= 3  # insert, lock, bump
    # A few rows per send and event: an index walked end to end reads USERS,
    # sends compared with every event read batch * events.
    rows, where = _busiest(explained)
    assert rows <= 4 * (batch + events), (rows, where)
