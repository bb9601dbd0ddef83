"""The per-user inbox: append events in order, read them back by cursor.

Callers hold the conversation's row lock, so events of one conversation enter
every member's inbox in the same order. Inbox rows are locked in user-id order
so that two transactions never wait on each other in a cycle.

A message's events (`message.new`, `.edited`, `.deleted`) store only the
message's id, and a read puts the message in as it is now. A copy of the text
in each member's inbox would outlive an edit or a delete: a device syncing from
an old cursor would be handed the words its sender took back, and a
moderator's tombstone would leave them in storage (found in review). A user
no longer in the conversation gets the message without its text: an edit made
after they left is not theirs. Live deliveries carry the message as it was
written, which is how it is then.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.ws_auth import credentials_valid, session_valid
from chatproject.converters import BIGINT_MAX
from chatproject.realtime import send_many_on_commit
from messaging import wire
from messaging.models import Inbox, InboxEvent, Membership, Message

REPLAY_PAGE = 500
# Events whose payload is a message, stored as `{"message_id": id}`.
MESSAGE_KINDS = frozenset({"message.new", "message.edited", "message.deleted"})

# A socket's periodic check as one statement (see `head_if_credentials_valid`).
# The time is the app's, as knox and the ORM check use.
HEAD_IF_CREDENTIALS_VALID = """
SELECT coalesce((SELECT last_seq FROM messaging_inbox WHERE user_id = u.id), 0)
  FROM accounts_user u
 WHERE u.id = %s AND u.is_active AND (
       %s::text IS NULL OR EXISTS (
           SELECT 1 FROM knox_authtoken t
            WHERE t.token_key = %s AND t.user_id = u.id
              AND (t.expiry IS NULL OR t.expiry > %s)))
"""


# The socket's replay page in one statement: each event, and for a message
# event the message as it is now (as `_messages_now` makes it: its text
# emptied where the reader is no longer a member), as JSON text made by
# PostgreSQL (jsonb's text, like the live frames' copy from the send
# function), to splice into the frame. Building, formatting and encoding a
# thousand messages in Python, after a second query, doubled a reconnect's
# replay (docs/benchmarks.md, session 17). Times as `wire.iso`:
# microseconds only when there are some. A reference is `{"message_id"}`,
# or before messaging 0007 a copy with its `id`; only digits are cast (the
# planner may cast before it checks the kind, and one bad row must not
# fail every replay of its user).
REPLAY_TEXT = """
SELECT e.seq, e.kind,
       CASE WHEN m.id IS NULL THEN e.payload::text END,
       CASE WHEN m.id IS NOT NULL THEN jsonb_build_object(
           'id', m.id, 'conversation_id', m.conversation_id, 'seq', m.seq,
           'sender_id', m.sender_id,
           'text', CASE WHEN mm.id IS NULL THEN '' ELSE m.text END,
           'client_msg_id', m.client_msg_id,
           'created_at', CASE
               WHEN mod(extract(microseconds FROM m.created_at)::bigint, 1000000) = 0
               THEN to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
               ELSE to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
               END,
           'edited_at', CASE
               WHEN mod(extract(microseconds FROM m.edited_at)::bigint, 1000000) = 0
               THEN to_char(m.edited_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
               ELSE to_char(m.edited_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
               END,
           'deleted', m.deleted_at IS NOT NULL)::text END
  FROM messaging_inboxevent e
  LEFT JOIN messaging_message m
    ON e.kind = ANY(%s)
   AND m.id = coalesce(
       CASE WHEN jsonb_typeof(e.payload->'message_id') = 'number'
             AND e.payload->>'message_id' ~ '^[0-9]{1,18}$'
            THEN (e.payload->>'message_id')::bigint END,
       CASE WHEN jsonb_typeof(e.payload->'message'->'id') = 'number'
             AND e.payload->'message'->>'id' ~ '^[0-9]{1,18}$'
            THEN (e.payload->'message'->>'id')::bigint END)
  LEFT JOIN messaging_membership mm
    ON mm.conversation_id = m.conversation_id AND mm.user_id = e.user_id
 WHERE e.user_id = %s AND e.seq > %s AND e.seq <= %s
 ORDER BY e.seq
 LIMIT %s
"""


@dataclass(frozen=True)
class Event:
    user_id: int
    seq: int
    kind: str
    payload: dict[str, Any]

    def frame(self) -> dict[str, Any]:
        return {"type": "event", "cursor": self.seq, "kind": self.kind, **self.payload}


def inbox_ensure(*, user_ids: Iterable[int]) -> None:
    # In user-id order, like every other inbox write (no lock-order inversions).
    Inbox.objects.bulk_create(
        [Inbox(user_id=u) for u in sorted(set(user_ids))], ignore_conflicts=True
    )


def inbox_append(
    *,
    user_ids: Iterable[int],
    kind: str,
    payload: dict[str, Any],
    stored: dict[str, Any] | None = None,
) -> list[Event]:
    """Give each user the event at their next inbox sequence; deliver after
    commit. The inbox keeps `stored` if given (what a read turns back into
    `payload`), else the payload."""
    ids = sorted(set(user_ids))
    if not ids:
        return []
    locked = dict(
        Inbox.objects.select_for_update()
        .filter(user_id__in=ids)
        .order_by("user_id")
        .values_list("user_id", "last_seq")
    )
    missing = [u for u in ids if u not in locked]
    if missing:
        # Users who never had an event: create their inbox, then lock it too.
        inbox_ensure(user_ids=missing)
        locked.update(
            Inbox.objects.select_for_update()
            .filter(user_id__in=missing)
            .order_by("user_id")
            .values_list("user_id", "last_seq")
        )
    Inbox.objects.filter(user_id__in=ids).update(last_seq=F("last_seq") + 1)
    events = [Event(u, locked[u] + 1, kind, payload) for u in ids]
    InboxEvent.objects.bulk_create(
        [
            InboxEvent(
                user_id=e.user_id,
                seq=e.seq,
                kind=kind,
                payload=payload if stored is None else stored,
            )
            for e in events
        ]
    )
    send_many_on_commit([(e.user_id, {"type": "inbox.event", "event": e.frame()}) for e in events])
    return events


def inbox_append_message(
    *, user_ids: Iterable[int], kind: str, message: dict[str, Any]
) -> list[Event]:
    """A message's event (`message_dict`, kind one of MESSAGE_KINDS):
    delivered with the message, stored as its id."""
    return inbox_append(
        user_ids=user_ids,
        kind=kind,
        payload={"message": message},
        stored={"message_id": message["id"]},
    )


def head_if_credentials_valid(
    *, user_id: int, token_key: str | None, session_key: str | None = None
) -> int | None:
    """The inbox head, or None if the socket's credentials are no longer valid
    (the user deactivated; its token, if it came with one, deleted or expired;
    its browser session, if it came with one, ended).

    A socket asks every CHAT_HEAD_CHECK seconds: with 2,000 sockets, as three
    ORM queries this took ~3.4 ms of CPU a check and a tenth of a core in all;
    one statement asks the same for a fraction of it (docs/benchmarks.md,
    "Session 8"). Same answers as `accounts.ws_auth.credentials_valid` and
    `inbox_head`, which the tests hold it to."""
    if connection.vendor != "postgresql":  # the embedded default (SQLite)
        if not credentials_valid(user_id=user_id, token_key=token_key, session_key=session_key):
            return None
        return inbox_head(user_id=user_id)
    with connection.cursor() as cursor:
        params = [user_id, token_key, token_key, timezone.now()]
        cursor.execute(HEAD_IF_CREDENTIALS_VALID, params)
        row = cursor.fetchone()
    if row is None:
        return None
    # A browser's session (a socket with a token has none): Django decodes it.
    if session_key is not None and not session_valid(user_id=user_id, session_key=session_key):
        return None
    return row[0]


def inbox_head(*, user_id: int) -> int:
    return Inbox.objects.filter(user_id=user_id).values_list("last_seq", flat=True).first() or 0


def _events(*, user_id: int, after: int, upto: int | None) -> QuerySet[InboxEvent]:
    """Events with cursor > after (and <= upto), oldest first."""
    rows = InboxEvent.objects.filter(user_id=user_id, seq__gt=after)
    if upto is not None:
        rows = rows.filter(seq__lte=upto)
    return rows.order_by("seq")


def inbox_read(
    *, user_id: int, after: int, limit: int = REPLAY_PAGE, upto: int | None = None
) -> list[dict[str, Any]]:
    """Event frames with cursor > after (and <= upto), oldest first."""
    rows = list(
        _events(user_id=user_id, after=after, upto=upto).values_list("seq", "kind", "payload")[
            :limit
        ]
    )
    ids = [_message_id(kind, payload) for _, kind, payload in rows]
    messages = _messages_now(user_id, ids)
    frames = []
    for (seq, kind, payload), message_id in zip(rows, ids, strict=True):
        message = messages.get(message_id) if message_id is not None else None
        if message is not None:
            payload = {"message": message}
        frames.append(Event(user_id, seq, kind, payload).frame())
    return frames


def inbox_read_text(
    *, user_id: int, after: int, limit: int = REPLAY_PAGE, upto: int | None = None
) -> list[tuple[int, str]]:
    """`inbox_read` for the socket's replay: (cursor, frame as JSON text), the
    frame spliced around the message's JSON text or the stored payload's text
    (REPLAY_TEXT). A reconnect replays up to thousands of events; making each
    frame's objects in Python only to encode them was most of the replay's CPU."""
    if connection.vendor != "postgresql":  # the embedded default (SQLite)
        return [
            (frame["cursor"], json.dumps(frame, ensure_ascii=False, separators=(",", ":")))
            for frame in inbox_read(user_id=user_id, after=after, limit=limit, upto=upto)
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            REPLAY_TEXT,
            [sorted(MESSAGE_KINDS), user_id, after, BIGINT_MAX if upto is None else upto, limit],
        )
        rows = cursor.fetchall()
    frames = []
    for seq, kind, body, message in rows:
        # Other payloads are JSON objects: their members follow the frame's own.
        members = f'"message":{message}' if message is not None else body.strip()[1:-1].strip()
        frames.append((seq, wire.event_frame_text(seq, kind, members)))
    return frames


def _message_id(kind: str, payload: Any) -> int | None:
    """The id a message event refers to; None for anything else, so that
    a stored payload nobody could have written goes out as stored (as in
    REPLAY_TEXT) instead of failing every read of its user's inbox."""
    if kind not in MESSAGE_KINDS or not isinstance(payload, dict):
        return None
    value = payload.get("message_id")
    if value is None:
        # Written before messaging migration 0007, which rewrote these as references.
        copy = payload.get("message")
        value = copy.get("id") if isinstance(copy, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**18:
        return value
    return None


def _messages_now(user_id: int, ids: Iterable[int | None]) -> dict[int, dict[str, Any]]:
    """The messages as they are now (`wire.message_dict`), by id; without
    their text in conversations the user is no longer in: an edit made after
    they left is not theirs to read, and the words they had then are not kept.
    (Messages are never removed, only tombstoned; an event whose message were
    gone would go out as stored.)"""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    messages = list(Message.objects.filter(pk__in=wanted))
    conversations = {m.conversation_id for m in messages}
    member_of = set(
        Membership.objects.filter(user_id=user_id, conversation_id__in=conversations).values_list(
            "conversation_id", flat=True
        )
    )
    found = {}
    for message in messages:
        body = wire.message_dict(message)
        if message.conversation_id not in member_of:
            body["text"] = ""
        found[message.pk] = body
    return found
