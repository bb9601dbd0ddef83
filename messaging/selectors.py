"""Messaging reads. `access_*` fetch and check membership; every list is
built with a fixed number of queries however long it is."""

from collections import defaultdict
from typing import Any

from django.db.models import F

from chatproject.errors import InvalidInput, NotFound
from messaging import wire
from messaging.inbox import inbox_head, inbox_read
from messaging.models import Membership, Message

MAX_PAGE = 200


def access_membership(*, user_id: int, conversation_id: int) -> Membership:
    membership = (
        Membership.objects.select_related("conversation")
        .filter(user_id=user_id, conversation_id=conversation_id)
        .first()
    )
    if membership is None:
        raise NotFound("No such conversation.", code="conversation_not_found")
    return membership


def member_ids(conversation_id: int) -> list[int]:
    return list(
        Membership.objects.filter(conversation_id=conversation_id).values_list("user_id", flat=True)
    )


def access_member_ids(*, user_id: int, conversation_id: int) -> list[int]:
    """All members' ids, for a member; outsiders get the same 404 as for nothing."""
    ids = member_ids(conversation_id)
    if user_id not in ids:
        raise NotFound("No such conversation.", code="conversation_not_found")
    return ids


def _page_limit(limit: int | None, default: int = 50) -> int:
    if limit is None:
        return default
    if limit < 1:
        raise InvalidInput("`limit` must be at least 1.", code="invalid_limit")
    return min(limit, MAX_PAGE)


def conversations_for_user(
    *, user_id: int, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """The user's conversations, most recently active first, in three queries."""
    own = list(
        Membership.objects.filter(user_id=user_id)
        .select_related("conversation")
        .order_by("-conversation__last_activity_at", "-conversation_id")[
            offset : offset + _page_limit(limit, 100)
        ]
    )
    conversation_ids = [m.conversation_id for m in own]
    members: dict[int, list[Membership]] = defaultdict(list)
    for m in (
        Membership.objects.filter(conversation_id__in=conversation_ids)
        .select_related("user")
        .order_by("joined_at", "id")
    ):
        members[m.conversation_id].append(m)
    last_messages = {
        m.conversation_id: m
        for m in Message.objects.filter(
            conversation_id__in=conversation_ids, seq=F("conversation__last_seq")
        )
    }
    return [
        wire.conversation_dict(
            m.conversation,
            members[m.conversation_id],
            last_message=last_messages.get(m.conversation_id),
            viewer=m,
        )
        for m in own
    ]


def conversation_for_user(*, user_id: int, conversation_id: int) -> dict[str, Any]:
    viewer = access_membership(user_id=user_id, conversation_id=conversation_id)
    conversation = viewer.conversation
    members = list(
        Membership.objects.filter(conversation=conversation)
        .select_related("user")
        .order_by("joined_at", "id")
    )
    last = Message.objects.filter(conversation=conversation, seq=conversation.last_seq).first()
    return wire.conversation_dict(conversation, members, last_message=last, viewer=viewer)


def message_history(
    *,
    user_id: int,
    conversation_id: int,
    before: int | None = None,
    after: int | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """A page of messages in ascending seq order. Without `after` the page is the
    newest one (before `before`, if given); with `after`, the oldest after it."""
    access_membership(user_id=user_id, conversation_id=conversation_id)
    if before is not None and after is not None:
        raise InvalidInput("Give `before` or `after`, not both.", code="invalid_range")
    size = _page_limit(limit)
    rows = Message.objects.filter(conversation_id=conversation_id)
    if after is not None:
        page = list(rows.filter(seq__gt=after).order_by("seq")[: size + 1])
        has_more = len(page) > size
        page = page[:size]
    else:
        if before is not None:
            rows = rows.filter(seq__lt=before)
        page = list(rows.order_by("-seq")[: size + 1])
        has_more = len(page) > size
        page = page[:size][::-1]
    return {"messages": [wire.message_dict(m) for m in page], "has_more": has_more}


def sync_page(*, user_id: int, cursor: int, limit: int | None = None) -> dict[str, Any]:
    if cursor < 0:
        raise InvalidInput("`cursor` must be non-negative.", code="invalid_cursor")
    size = _page_limit(limit, MAX_PAGE)
    events = inbox_read(user_id=user_id, after=cursor, limit=size + 1)
    has_more = len(events) > size
    events = events[:size]
    new_cursor = events[-1]["cursor"] if events else cursor
    if not events and cursor > (head := inbox_head(user_id=user_id)):
        # A cursor from the future (say, a restored server): start over from the head.
        return {"events": [], "cursor": head, "has_more": False, "reset": True}
    return {"events": events, "cursor": new_cursor, "has_more": has_more, "reset": False}


def message_wire(*, message_id: int) -> dict[str, Any]:
    """A stored message as the sender's `ack` shows it (resends)."""
    return wire.message_dict(Message.objects.get(pk=message_id))
