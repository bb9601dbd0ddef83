"""The JSON shapes of messages and conversations, wherever they appear
(REST answers, `ack` frames, inbox events). One definition keeps REST and the
socket from drifting apart."""

import json
from datetime import datetime
from typing import Any

from messaging.models import Conversation, Membership, Message


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def message_dict(message: Message) -> dict[str, Any]:
    return {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "sender_id": message.sender_id,
        "text": message.text,
        "client_msg_id": message.client_msg_id,
        "created_at": iso(message.created_at),
        "edited_at": iso(message.edited_at),
        "deleted": message.deleted_at is not None,
    }


# A stored message goes out as an `ack` to its sender and a `message.new` event
# to every member's devices: the frames are spliced around the message's JSON
# text, encoded once (by PostgreSQL when it stored it, or `message_json`), not
# parsed and encoded again per frame.


def message_json(message: dict[str, Any]) -> str:
    """A message dict as the JSON text the frames below splice in."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def event_frame_text(cursor: int, kind: str, members: str) -> str:
    """An inbox event frame: `members` are the payload object's members as
    JSON text, without the braces (empty for an empty payload)."""
    head = f'{{"type":"event","cursor":{cursor},"kind":{json.dumps(kind)}'
    return f"{head},{members}}}" if members else f"{head}}}"


def message_event_text(cursor: int, message_json: str) -> str:
    """The `message.new` event frame, the same shape as a replayed one."""
    return event_frame_text(cursor, "message.new", f'"message":{message_json}')


def ack_text(client_msg_id: str, duplicate: bool, message_json: str, cursor: int | None) -> str:
    head = f'{{"type":"ack","client_msg_id":{json.dumps(client_msg_id, ensure_ascii=False)}'
    tail = f',"cursor":{cursor}}}' if cursor is not None else "}"
    return f'{head},"duplicate":{"true" if duplicate else "false"},"message":{message_json}{tail}'


def member_dict(membership: Membership, *, show_read: bool = True) -> dict[str, Any]:
    user = membership.user
    return {
        "user_id": membership.user_id,
        "username": user.username,
        "display_name": user.display_name,
        "avatar_url": user.avatar_url or None,  # stored as "", null as in users/ and me/
        "role": membership.role,
        "last_read_seq": membership.last_read_seq if show_read else None,
    }


def conversation_dict(
    conversation: Conversation,
    members: list[Membership],
    *,
    last_message: Message | None = None,
    viewer: Membership | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": conversation.pk,
        "kind": conversation.kind,
        "title": conversation.title,
        "created_at": iso(conversation.created_at),
        "last_activity_at": iso(conversation.last_activity_at),
        "last_seq": conversation.last_seq,
        # Read markers are receipts in direct chats; in groups they stay private
        # (the viewer's own is in `last_read_seq` below).
        "members": [
            member_dict(m, show_read=conversation.kind == Conversation.Kind.DIRECT) for m in members
        ],
        "last_message": message_dict(last_message) if last_message is not None else None,
    }
    if viewer is not None:
        body["last_read_seq"] = viewer.last_read_seq
        # Sending advances one's own read marker, so this counts others' messages.
        body["unread_count"] = max(conversation.last_seq - viewer.last_read_seq, 0)
    return body
