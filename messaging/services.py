"""Messaging writes. Each function validates, writes in one transaction, and
emits inbox events (delivered after commit). The REST views and the socket
consumer call these same functions.

Locking order, everywhere: the conversation row first, then inbox rows in
user-id order. Taking the conversation lock for every conversation-scoped
event makes all members' inboxes agree on the order of that conversation's
events, and makes the group-size limit hold under concurrent adds.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import User
from chatproject.errors import ChatError, InvalidInput, NotFound, PermissionDenied
from chatproject.realtime import send_many_on_commit
from chatproject.text import clean_name, has_visible
from messaging import selectors, send_store, wire
from messaging.inbox import inbox_append, inbox_append_message, inbox_ensure
from messaging.models import Conversation, Membership, Message
from messaging.send_store import Send
from notifications.tasks import push_new_messages

CLIENT_MSG_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class GroupFull(ChatError):
    code = "group_full"
    status = 409


@dataclass(frozen=True)
class SendResult:
    message: Message
    created: bool


# --- helpers ---------------------------------------------------------------


def _lock_conversation(conversation_id: int) -> Conversation:
    try:
        return Conversation.objects.select_for_update().get(pk=conversation_id)
    except Conversation.DoesNotExist:
        raise NotFound("No such conversation.", code="conversation_not_found") from None


def _members(conversation: Conversation) -> list[Membership]:
    return list(
        Membership.objects.filter(conversation=conversation)
        .select_related("user")
        .order_by("joined_at", "id")
    )


def _membership_of(members: list[Membership], user_id: int) -> Membership:
    for membership in members:
        if membership.user_id == user_id:
            return membership
    # Outsiders get the same answer as for a conversation that does not exist.
    raise NotFound("No such conversation.", code="conversation_not_found")


def _require_manager(membership: Membership) -> None:
    if not membership.can_manage:
        raise PermissionDenied("Only the group's owner and admins can do this.")


def _require_group(conversation: Conversation) -> None:
    if conversation.kind != Conversation.Kind.GROUP:
        raise InvalidInput(
            "A direct conversation has no title, roles or members to change.", code="not_a_group"
        )


def _lock_group(
    conversation_id: int, actor_id: int
) -> tuple[Conversation, list[Membership], Membership]:
    """Lock a group for a change by one of its members: (conversation, members, actor)."""
    conversation = _lock_conversation(conversation_id)
    members = _members(conversation)
    actor = _membership_of(members, actor_id)
    _require_group(conversation)
    return conversation, members, actor


def _member(members: list[Membership], user_id: int) -> Membership:
    for membership in members:
        if membership.user_id == user_id:
            return membership
    raise NotFound("That user is not a member.", code="member_not_found")


def _emit_updated(conversation: Conversation, members: list[Membership]) -> None:
    inbox_append(
        user_ids=[m.user_id for m in members],
        kind="conversation.updated",
        payload={"conversation": wire.conversation_dict(conversation, members)},
    )


def _active_users(user_ids: Iterable[int]) -> list[User]:
    ids = set(user_ids)
    users = list(User.objects.filter(pk__in=ids, is_active=True))
    if len(users) != len(ids):
        unknown = sorted(ids - {u.pk for u in users})
        raise InvalidInput(f"Unknown users: {unknown}.", code="unknown_user")
    return users


def clean_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidInput("`text` must be a string.", code="invalid_text")
    text = text.strip()
    if not has_visible(text):
        # Also zero-width spaces and other format characters: nothing to show.
        raise InvalidInput("The message is empty.", code="empty_text")
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise InvalidInput(
            f"The message is longer than {settings.CHAT_MAX_MESSAGE_CHARS} characters.",
            code="text_too_long",
        )
    if "\x00" in text:
        raise InvalidInput("The message contains a NUL character.", code="invalid_text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (from JSON "\ud800") cannot be stored or sent on.
        raise InvalidInput("The message is not valid Unicode.", code="invalid_text") from None
    return text


def clean_client_msg_id(client_msg_id: object) -> str:
    if not isinstance(client_msg_id, str) or not CLIENT_MSG_ID.fullmatch(client_msg_id):
        raise InvalidInput(
            "`client_msg_id` must be 1-64 characters of letters, digits and ._:-",
            code="invalid_client_msg_id",
        )
    return client_msg_id


def _check_capacity(current: int, adding: int) -> None:
    limit = settings.CHAT_MAX_GROUP_MEMBERS
    if current + adding > limit:
        raise GroupFull(f"A group has at most {limit} members.")


def _emit_members_added(
    conversation: Conversation, members: list[Membership], added: list[int]
) -> None:
    payload = {
        "conversation_id": conversation.pk,
        "user_ids": added,
        "conversation": wire.conversation_dict(conversation, members),
    }
    inbox_append(user_ids=[m.user_id for m in members], kind="member.added", payload=payload)


# --- conversations ------------------------------------------------------------


@transaction.atomic
def conversation_direct_get_or_create(
    *, user: User, other_user_id: int
) -> tuple[Conversation, bool]:
    if other_user_id == user.pk:
        raise InvalidInput("A direct conversation needs another user.", code="invalid_user")
    _active_users([other_user_id])
    low, high = sorted((user.pk, other_user_id))
    key = f"{low}:{high}"
    existing = Conversation.objects.filter(direct_key=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(
                kind=Conversation.Kind.DIRECT, direct_key=key, created_by=user
            )
    except IntegrityError:
        # Both users asked at once; the other request created it.
        return Conversation.objects.get(direct_key=key), False
    Membership.objects.bulk_create(
        [
            Membership(conversation=conversation, user_id=u, role=Membership.Role.MEMBER)
            for u in (low, high)
        ]
    )
    inbox_ensure(user_ids=[low, high])
    _emit_members_added(conversation, _members(conversation), [low, high])
    return conversation, True


def _group_title(title: str) -> str:
    """Like a display name: no direction controls, and something visible."""
    title = clean_name(title)
    if not title:
        raise InvalidInput("A group needs a title.", code="invalid_title")
    return title


@transaction.atomic
def conversation_group_create(
    *, owner: User, title: str, member_ids: Iterable[int]
) -> Conversation:
    title = _group_title(title)
    others = sorted(set(member_ids) - {owner.pk})
    _check_capacity(1, len(others))
    _active_users(others)
    conversation = Conversation.objects.create(
        kind=Conversation.Kind.GROUP, title=title[:200], created_by=owner
    )
    Membership.objects.bulk_create(
        [Membership(conversation=conversation, user=owner, role=Membership.Role.OWNER)]
        + [Membership(conversation=conversation, user_id=u) for u in others]
    )
    everyone = sorted([owner.pk, *others])
    inbox_ensure(user_ids=everyone)
    _emit_members_added(conversation, _members(conversation), everyone)
    return conversation


@transaction.atomic
def conversation_rename(*, actor_id: int, conversation_id: int, title: str) -> Conversation:
    conversation, members, actor = _lock_group(conversation_id, actor_id)
    _require_manager(actor)
    title = _group_title(title)
    conversation.title = title[:200]
    conversation.save(update_fields=["title"])
    _emit_updated(conversation, members)
    return conversation


@transaction.atomic
def members_add(*, actor_id: int, conversation_id: int, user_ids: Iterable[int]) -> Conversation:
    conversation, members, actor = _lock_group(conversation_id, actor_id)
    _require_manager(actor)
    present = {m.user_id for m in members}
    new = sorted(set(user_ids) - present)
    if not new:
        return conversation
    # Under the conversation lock: concurrent adds cannot both pass this check.
    _check_capacity(len(members), len(new))
    _active_users(new)
    # What was said before they joined is not unread for them.
    Membership.objects.bulk_create(
        [
            Membership(conversation=conversation, user_id=u, last_read_seq=conversation.last_seq)
            for u in new
        ]
    )
    inbox_ensure(user_ids=new)
    _emit_members_added(conversation, _members(conversation), new)
    return conversation


@transaction.atomic
def member_remove(*, actor_id: int, conversation_id: int, user_id: int) -> None:
    """Remove a member (owner/admins), or leave (anyone, for themselves)."""
    conversation, members, actor = _lock_group(conversation_id, actor_id)
    target = _member(members, user_id)
    if user_id != actor_id:
        _require_manager(actor)
        if target.role == Membership.Role.OWNER:
            raise PermissionDenied("The owner cannot be removed.")
    target.delete()
    remaining = [m for m in members if m.user_id != user_id]
    inbox_append(
        user_ids=[m.user_id for m in members],
        kind="member.removed",
        payload={"conversation_id": conversation.pk, "user_ids": [user_id]},
    )
    if target.role == Membership.Role.OWNER and remaining:
        # The group must keep an owner, one who can act if anyone can.
        heir = _heir(remaining) or remaining[0]
        heir.role = Membership.Role.OWNER
        heir.save(update_fields=["role"])
        _emit_updated(conversation, remaining)


def _heir(members: list[Membership]) -> Membership | None:
    """Who inherits a group: the longest-standing active admin, else active
    member (None if nobody but the owner is active)."""
    active = [m for m in members if m.user.is_active and m.role != Membership.Role.OWNER]
    admin = next((m for m in active if m.role == Membership.Role.ADMIN), None)
    return admin or next(iter(active), None)


def on_user_deactivated(*, user: User, **_: object) -> None:
    """Receives accounts' `user_deactivated`, inside the deactivating
    transaction: the hand-over runs after it commits, so a lock wait there
    can never undo a ban."""
    user_id = user.pk
    transaction.on_commit(lambda: groups_hand_over(user_id=user_id), robust=True)


def groups_hand_over(*, user_id: int) -> None:
    """Each group a deactivated user owns gets a new owner (`_heir`): until
    then nobody could rename it or manage its members. The former owner stays
    a member, so a reactivation finds their chats. One transaction per group,
    each locking its conversation and then its members' inboxes, like every
    other write: several groups in one would lock inboxes out of order."""
    owned = Membership.objects.filter(user_id=user_id, role=Membership.Role.OWNER)
    for conversation_id in sorted(owned.values_list("conversation_id", flat=True)):
        with transaction.atomic():
            conversation = _lock_conversation(conversation_id)
            members = _members(conversation)
            former = next((m for m in members if m.user_id == user_id), None)
            heir = _heir(members)
            if former is None or former.role != Membership.Role.OWNER or former.user.is_active:
                continue  # left, handed over or reactivated meanwhile
            if heir is None:
                continue  # nobody active left to take it
            former.role = Membership.Role.MEMBER
            former.save(update_fields=["role"])
            heir.role = Membership.Role.OWNER
            heir.save(update_fields=["role"])
            _emit_updated(conversation, members)


@transaction.atomic
def member_set_role(*, actor_id: int, conversation_id: int, user_id: int, role: str) -> None:
    conversation, members, actor = _lock_group(conversation_id, actor_id)
    if actor.role != Membership.Role.OWNER:
        raise PermissionDenied("Only the owner can change roles.")
    if role not in (Membership.Role.ADMIN, Membership.Role.MEMBER):
        raise InvalidInput("`role` is admin or member.", code="invalid_role")
    target = _member(members, user_id)
    if target.role == Membership.Role.OWNER:
        raise PermissionDenied("The owner's role cannot be changed.")
    target.role = role
    target.save(update_fields=["role"])
    _emit_updated(conversation, members)


# --- messages -------------------------------------------------------------


def _existing_send(conversation_id: int, sender_id: int, client_msg_id: str) -> Message | None:
    return Message.objects.filter(
        conversation_id=conversation_id, sender_id=sender_id, client_msg_id=client_msg_id
    ).first()


def message_send(
    *, sender_id: int, conversation_id: int, client_msg_id: object, text: object
) -> SendResult:
    send = Send(
        conversation_id=conversation_id,
        sender_id=sender_id,
        client_msg_id=clean_client_msg_id(client_msg_id),
        text=clean_text(text),
    )
    if connection.vendor == "postgresql":
        return _message_send_sql(send)
    return message_send_orm(send)


@transaction.atomic
def _message_send_sql(send: Send) -> SendResult:
    """One statement: the batch function of migration 0002 with a batch of one."""
    with connection.cursor() as cursor:
        cursor.execute(send_store.SQL, send_store.params([send], timezone.now()))
        stored = send_store.parse(cursor.fetchone())
    return send_result(stored)


def _push_on_commit(message_id: int) -> None:
    """Members with no device online get a push; the worker decides who, when
    it runs. Robust: the message is committed by then, and a broker that is
    down must not turn its send into an error (the sender would resend and
    get `duplicate`, and nobody would be told live). Logged instead."""

    def push() -> None:  # named: Django logs a robust callback's __qualname__
        push_new_messages.delay([message_id])

    transaction.on_commit(push, robust=True)


def send_result(stored: send_store.Stored) -> SendResult:
    """What a stored send means for the sender (and, if new, for everyone else)."""
    if stored.status == "not_found":
        raise NotFound("No such conversation.", code="conversation_not_found")
    message = Message.objects.get(pk=stored.message_id)
    if stored.status == "duplicate":
        return SendResult(message, created=False)
    send_many_on_commit(send_store.outgoing([stored]))
    _push_on_commit(message.pk)
    return SendResult(message, created=True)


@transaction.atomic
def message_send_orm(send: Send) -> SendResult:
    """The same rules as `messaging_send_batch`, for databases without it."""
    conversation = _lock_conversation(send.conversation_id)
    # Checked under the lock (a concurrent resend of the same id has committed
    # by now) and before membership: a message that was stored is acknowledged
    # on resend even if the sender has since left.
    existing = _existing_send(conversation.pk, send.sender_id, send.client_msg_id)
    if existing is not None:
        return SendResult(existing, created=False)
    members = dict(
        Membership.objects.filter(conversation=conversation).values_list(
            "user_id", "user__is_active"
        )
    )
    # A deactivated sender is refused even on a socket that has not closed yet.
    if not members.get(send.sender_id):
        raise NotFound("No such conversation.", code="conversation_not_found")
    member_ids = list(members)

    now = timezone.now()
    conversation.last_seq += 1
    conversation.last_activity_at = now
    conversation.save(update_fields=["last_seq", "last_activity_at"])
    message = Message.objects.create(
        conversation=conversation,
        seq=conversation.last_seq,
        sender_id=send.sender_id,
        client_msg_id=send.client_msg_id,
        text=send.text,
        created_at=now,
    )
    # Sending implies having read everything before: unread counts only others' messages.
    Membership.objects.filter(conversation=conversation, user_id=send.sender_id).update(
        last_read_seq=message.seq
    )
    inbox_append_message(
        user_ids=member_ids, kind="message.new", message=wire.message_dict(message)
    )
    _push_on_commit(message.pk)
    return SendResult(message, created=True)


def _lock_own_message(actor_id: int, message_id: int) -> tuple[Message, list[int]]:
    message = Message.objects.filter(pk=message_id).only("conversation_id").first()
    if message is None:
        raise NotFound("No such message.", code="message_not_found")
    _lock_conversation(message.conversation_id)
    member_ids = selectors.member_ids(message.conversation_id)
    if actor_id not in member_ids:
        raise NotFound("No such message.", code="message_not_found")
    message = Message.objects.get(pk=message_id)
    if message.sender_id != actor_id:
        raise PermissionDenied("You can only change your own messages.")
    if message.deleted_at is not None:
        raise InvalidInput("The message was deleted.", code="message_deleted")
    return message, member_ids


@transaction.atomic
def message_edit(*, actor_id: int, message_id: int, text: object) -> Message:
    text = clean_text(text)
    message, member_ids = _lock_own_message(actor_id, message_id)
    if text == message.text:
        return message
    message.text = text
    message.edited_at = timezone.now()
    message.save(update_fields=["text", "edited_at"])
    inbox_append_message(
        user_ids=member_ids, kind="message.edited", message=wire.message_dict(message)
    )
    return message


def _tombstone(message: Message, member_ids: list[int]) -> Message:
    # The sequence keeps its place, the text is gone.
    message.text = ""
    message.deleted_at = timezone.now()
    message.save(update_fields=["text", "deleted_at"])
    inbox_append_message(
        user_ids=member_ids, kind="message.deleted", message=wire.message_dict(message)
    )
    return message


@transaction.atomic
def message_delete(*, actor_id: int, message_id: int) -> Message:
    message, member_ids = _lock_own_message(actor_id, message_id)
    return _tombstone(message, member_ids)


@transaction.atomic
def message_moderate_delete(*, message_id: int) -> Message | None:
    """A moderator removes a message: the same tombstone, reaching every device
    live. None when there is no such message or it was deleted already."""
    message = Message.objects.filter(pk=message_id).only("conversation_id").first()
    if message is None:
        return None
    _lock_conversation(message.conversation_id)
    message = Message.objects.get(pk=message_id)
    if message.deleted_at is not None:
        return None
    return _tombstone(message, selectors.member_ids(message.conversation_id))


@transaction.atomic
def member_moderate_remove(*, conversation_id: int, user_id: int) -> None:
    """A moderator removes someone from a conversation (an event to every member)."""
    conversation = _lock_conversation(conversation_id)
    members = _members(conversation)
    target = next((m for m in members if m.user_id == user_id), None)
    if target is None:
        return
    owner = next((m for m in members if m.role == Membership.Role.OWNER), None)
    actor_id = owner.user_id if owner is not None and owner.user_id != user_id else user_id
    member_remove(actor_id=actor_id, conversation_id=conversation_id, user_id=user_id)


@transaction.atomic
def conversation_mark_read(*, user_id: int, conversation_id: int, seq: object) -> int:
    """Advance the user's read marker (never backwards); returns the stored marker."""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise InvalidInput("`seq` must be a non-negative integer.", code="invalid_seq")
    conversation = _lock_conversation(conversation_id)
    members = list(Membership.objects.filter(conversation=conversation))
    membership = _membership_of(members, user_id)
    seq = min(seq, conversation.last_seq)
    if seq <= membership.last_read_seq:
        return membership.last_read_seq
    membership.last_read_seq = seq
    membership.save(update_fields=["last_read_seq"])
    # The reader's other devices always learn it; in a direct conversation the
    # other person sees it as a read receipt. Group read state stays private.
    recipients = [user_id]
    if conversation.kind == Conversation.Kind.DIRECT:
        recipients = [m.user_id for m in members]
    inbox_append(
        user_ids=recipients,
        kind="read",
        payload={"conversation_id": conversation.pk, "user_id": user_id, "seq": seq},
    )
    return seq
