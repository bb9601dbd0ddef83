"""Typing indicators: ephemeral, never stored, only to the other members."""

from chatproject.errors import NotFound
from messaging.models import Membership

# How long a client shows "typing…" after the last indicator; clients send
# again while typing, at most once per TYPING_THROTTLE_SECONDS.
TYPING_EXPIRES_SECONDS = 5.0
TYPING_THROTTLE_SECONDS = 2.0


def typing_recipients(*, user_id: int, conversation_id: int) -> list[int]:
    member_ids = list(
        Membership.objects.filter(conversation_id=conversation_id).values_list("user_id", flat=True)
    )
    if user_id not in member_ids:
        raise NotFound("No such conversation.", code="conversation_not_found")
    return [m for m in member_ids if m != user_id]
