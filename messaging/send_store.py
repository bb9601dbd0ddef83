"""Storing sends on PostgreSQL: one call of `messaging_send_batch` (migrations
0002-0006) per batch. Shared by the sync service (REST, one send) and the socket's
send queue (many sends, async connection), so both store exactly alike."""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from chatproject.realtime import Outgoing
from messaging import wire

# The message as JSON text: it is spliced into frames as it is (messaging.wire).
SQL = (
    "SELECT status, message_id, message::text, user_ids, cursors"
    " FROM messaging_send_batch(%s, %s, %s)"
)
# Which of some sends are stored: (message id, conversation id).
FIND_STORED = """
SELECT m.id, m.conversation_id FROM messaging_message m
  JOIN unnest(%s::bigint[], %s::bigint[], %s::text[]) AS k(conversation_id, sender_id, cmid)
    ON m.conversation_id = k.conversation_id AND m.sender_id = k.sender_id
   AND m.client_msg_id = k.cmid
"""


@dataclass(frozen=True)
class Send:
    """A send that passed validation (`clean_text`, `clean_client_msg_id`)."""

    conversation_id: int
    sender_id: int
    client_msg_id: str
    text: str


@dataclass(frozen=True)
class Stored:
    status: Literal["created", "duplicate", "not_found"]
    message_id: int | None
    # The wire shape of a created message as JSON text (messaging.wire); None
    # for the other statuses.
    message: str | None = None
    # (user id, inbox cursor) of every member's `message.new` event.
    events: list[tuple[int, int]] = field(default_factory=list)


def params(sends: Sequence[Send], now: datetime) -> tuple[str, datetime, str]:
    body = json.dumps(
        [
            {
                "conversation_id": s.conversation_id,
                "sender_id": s.sender_id,
                "client_msg_id": s.client_msg_id,
                "text": s.text,
            }
            for s in sends
        ],
        ensure_ascii=False,
    )
    return body, now, wire.iso(now) or ""


def key(send: Send) -> tuple[int, int, str]:
    return send.conversation_id, send.sender_id, send.client_msg_id


def keys(sends: Sequence[Send]) -> tuple[list[int], list[int], list[str]]:
    return (
        [s.conversation_id for s in sends],
        [s.sender_id for s in sends],
        [s.client_msg_id for s in sends],
    )


def parse(row: Sequence[Any]) -> Stored:
    status, message_id, message, user_ids, cursors = row
    events = list(zip(user_ids or [], cursors or [], strict=True))
    return Stored(status, message_id, message, events)


def distinct(sends: Sequence[Send]) -> tuple[list[Send], list[int]]:
    """The batch without repeats of one (conversation, sender, client_msg_id)
    (a resend racing its first attempt), and where each send's answer is."""
    first: dict[tuple[int, int, str], int] = {}
    unique: list[Send] = []
    where: list[int] = []
    for send in sends:
        k = key(send)
        if k not in first:
            first[k] = len(unique)
            unique.append(send)
        where.append(first[k])
    return unique, where


def answers(stored: Sequence[Stored | Exception], where: Sequence[int]) -> list[Stored | Exception]:
    """One answer per send of the batch: a repeat is a duplicate of its first
    (or gets its error)."""
    seen: set[int] = set()
    result: list[Stored | Exception] = []
    for index in where:
        item = stored[index]
        if index in seen and isinstance(item, Stored) and item.status == "created":
            item = Stored("duplicate", item.message_id, item.message)
        seen.add(index)
        result.append(item)
    return result


def outgoing(stored: Iterable[Stored]) -> Outgoing:
    """The live `message.new` deliveries for what a batch created."""
    messages: Outgoing = []
    for item in stored:
        if item.status != "created":
            continue
        for user_id, cursor in item.events:
            # One shared text for every member; each socket splices its frame
            # as it sends it (ChatConsumer.inbox_message).
            messages.append(
                (user_id, {"type": "inbox.message", "cursor": cursor, "message": item.message})
            )
    return messages
