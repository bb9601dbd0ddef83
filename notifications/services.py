"""Who gets a push for a message, and sending it.

Invariant: a user with any device online gets no push for a message; a user
with none gets one per message on every registered device; tokens FCM calls
dead are deleted. Presence is checked when the push is about to go out, the
moment that matters.
"""

import logging
from dataclasses import dataclass

from accounts.models import User
from messaging.models import Conversation, Membership, Message
from notifications.models import Device
from notifications.push import Outcome, Push, get_provider
from presence.store import get_store, now

logger = logging.getLogger(__name__)

BODY_CHARS = 200


@dataclass(frozen=True)
class PushResult:
    sent: int
    removed: int
    to_retry: list[int]  # device ids


def offline_user_ids(user_ids: list[int]) -> list[int]:
    statuses = get_store().statuses(user_ids, now())
    return [s.user_id for s in statuses if not s.online]


def push_for_message(message: Message, sender: User, conversation: Conversation) -> Push:
    name = sender.display_name or sender.username
    title = (
        name if conversation.kind == Conversation.Kind.DIRECT else f"{name} in {conversation.title}"
    )
    text = message.text
    body = text if len(text) <= BODY_CHARS else text[: BODY_CHARS - 1] + "…"
    return Push(
        title=title,
        body=body,
        data={
            "kind": "message.new",
            "conversation_id": str(conversation.pk),
            "message_id": str(message.pk),
            "seq": str(message.seq),
        },
    )


def _send(devices: list[Device], push: Push) -> PushResult:
    provider = get_provider()
    sent, dead, retry = 0, [], []
    for device in devices:
        outcome = provider.send(device.token, push)
        if outcome is Outcome.SENT:
            sent += 1
        elif outcome is Outcome.TOKEN_INVALID:
            dead.append(device.pk)
        else:
            retry.append(device.pk)
    if dead:
        Device.objects.filter(pk__in=dead).delete()
        logger.info("removed %d push tokens FCM rejected", len(dead))
    return PushResult(sent=sent, removed=len(dead), to_retry=retry)


def message_push_fanout(*, message_id: int) -> PushResult:
    """Push a new message to every device of every member who is offline."""
    message = Message.objects.select_related("conversation", "sender").filter(pk=message_id).first()
    if message is None or message.deleted_at is not None:
        return PushResult(0, 0, [])
    recipients = list(
        Membership.objects.filter(conversation_id=message.conversation_id)
        .exclude(user_id=message.sender_id)
        .values_list("user_id", flat=True)
    )
    offline = offline_user_ids(recipients) if recipients else []
    if not offline:
        return PushResult(0, 0, [])
    devices = list(Device.objects.filter(user_id__in=offline))
    push = push_for_message(message, message.sender, message.conversation)
    return _send(devices, push)


def message_push_device(*, message_id: int, device_id: int) -> PushResult:
    """A retry for one device: only if still relevant (device exists, user offline)."""
    device = Device.objects.filter(pk=device_id).first()
    message = Message.objects.select_related("conversation", "sender").filter(pk=message_id).first()
    if device is None or message is None or message.deleted_at is not None:
        return PushResult(0, 0, [])
    if not offline_user_ids([device.user_id]):
        return PushResult(0, 0, [])
    return _send([device], push_for_message(message, message.sender, message.conversation))
