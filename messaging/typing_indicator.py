"""Typing indicators: ephemeral, never stored, only to the other members."""

from messaging.selectors import access_member_ids

# How long a client shows "typing…" after the last indicator; clients send
# again while typing, at most once per TYPING_THROTTLE_SECONDS.
TYPING_EXPIRES_SECONDS = 5.0
TYPING_THROTTLE_SECONDS = 2.0


def typing_recipients(*, user_id: int, conversation_id: int) -> list[int]:
    ids = access_member_ids(user_id=user_id, conversation_id=conversation_id)
    return [m for m in ids if m != user_id]
