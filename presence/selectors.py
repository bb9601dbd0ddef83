from accounts.models import User
from chatproject.errors import NotFound
from messaging.models import Membership
from presence.services import iso_time
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
    statuses = get_store().statuses(wanted, now())
    # After a Redis restart the live "last seen" is gone; the database keeps the
    # time of each user's last offline change.
    stored = dict(User.objects.filter(pk__in=wanted).values_list("pk", "last_active_at"))
    return [
        {
            "user_id": s.user_id,
            "status": "online" if s.online else "offline",
            "last_active_at": iso_time(s.last_active_at or stored.get(s.user_id)),
            "version": s.version,
        }
        for s in statuses
    ]
