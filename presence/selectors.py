from chatproject.errors import NotFound
from messaging.models import Membership
from presence.services import status_frame
from presence.store import get_store, now

MAX_USERS_PER_QUERY = 200


def presence_for(*, viewer_id: int, user_ids: list[int]) -> list[dict]:
    """Status of users who share a conversation with the viewer (or the viewer)."""
    wanted = list(dict.fromkeys(user_ids))
    shared = set(
        Membership.objects.filter(
            conversation__memberships__user_id=viewer_id, user_id__in=wanted
        ).values_list("user_id", flat=True)
    ) | {viewer_id}
    strangers = [u for u in wanted if u not in shared]
    if strangers:
        # Strangers and unknown ids look alike: presence leaks nothing about either.
        raise NotFound(f"No such contacts: {strangers}.", code="user_not_found")
    frames = [status_frame(s) for s in get_store().statuses(wanted, now())]
    for frame in frames:
        del frame["type"]
    return frames
