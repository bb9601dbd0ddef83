"""Who gets a push for a message, and sending it.

Invariant: a user with any device online gets no push for a message; a user
with none gets one per message on every registered device; tokens FCM calls
dead are deleted. Presence is checked when the push is about to go out, the
moment that matters.
"""

import logging

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import User
from messaging.models import Conversation, Membership, Message
from notifications.models import Device
from notifications.push import Outcome, Push, get_provider
from presence.store import get_store, now

logger = logging.getLogger(__name__)

BODY_CHARS = 200


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


def _send(device: Device, push: Push) -> Outcome:
    outcome = get_provider().send(device.token, push)
    if outcome is Outcome.TOKEN_INVALID:
        Device.objects.filter(pk=device.pk).delete()
        logger.info("removed push token %s… that FCM rejected", device.token[:12])
    return outcome


def _pushable(message_id: int) -> Message | None:
    message = Message.objects.select_related("conversation", "sender").filter(pk=message_id).first()
    if message is None or message.deleted_at is not None:
        return None
    return message


def _signed_in(devices: QuerySet[Device]) -> QuerySet[Device]:
    """Devices whose API token is still good. An expired token's row stays
    until knox next purges it: its phone is signed out all the same. (Devices
    without a token were registered before `devices/` required one.)"""
    still_good = Q(auth_token__expiry__isnull=True) | Q(auth_token__expiry__gt=timezone.now())
    return devices.filter(Q(auth_token__isnull=True) | still_good)


def message_push_targets(*, message_id: int) -> list[int]:
    """The devices to push a new message to: every device of every active
    member other than the sender who has no device online."""
    message = _pushable(message_id)
    if message is None:
        return []
    recipients = list(
        Membership.objects.filter(conversation_id=message.conversation_id, user__is_active=True)
        .exclude(user_id=message.sender_id)
        .values_list("user_id", flat=True)
    )
    offline = offline_user_ids(recipients) if recipients else []
    devices = _signed_in(Device.objects.filter(user_id__in=offline))
    return list(devices.values_list("pk", flat=True))


def message_push_device(*, message_id: int, device_id: int) -> Outcome | None:
    """Push one message to one device, if still relevant: the device exists
    and is signed in, its user is active, still in the conversation (a retry
    may come long after they left) and still has no device online. None:
    nothing to send."""
    device = _signed_in(Device.objects.select_related("user")).filter(pk=device_id).first()
    message = _pushable(message_id)
    if device is None or message is None or not device.user.is_active:
        return None
    member = Membership.objects.filter(conversation_id=message.conversation_id, user=device.user)
    if not member.exists():
        return None
    if not offline_user_ids([device.user_id]):
        return None
    return _send(device, push_for_message(message, message.sender, message.conversation))
