"""Account reads. `access_*` fetch one thing the caller may see, or raise NotFound."""

import re

from django.db.models import Q, QuerySet

from accounts.models import User
from chatproject.errors import NotFound
from notifications.models import Device

# Below this length a query matches the start of a name, not any part of it:
# "contains" two letters has no trigram to look up (accounts migration 0005),
# and reading a million names for it took 0.8-1.7 s; a prefix has ("  x", " xy").
SEARCH_CONTAINS_FROM = 3
# pg_trgm makes trigrams of letters and digits only: a query of nothing else
# ("...", "@") has none to look up and read every user. Such a query has no
# case either, so the username's own unique index finds its exact match.
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


def user_search(*, query: str = "") -> QuerySet[User]:
    """Active users whose username or display name contains `query` (any
    case), or, for one or two characters, starts with it. A query without a
    letter or digit finds only the username it is.

    Deactivated users are never found: nobody should start a chat with them.
    Ordered by username, which is unique, so a cursor can page through it.
    """
    users = User.objects.filter(is_active=True)
    query = query.strip()
    if query and not _LETTER_OR_DIGIT.search(query):
        return users.filter(username=query)
    if len(query) >= SEARCH_CONTAINS_FROM:
        users = users.filter(Q(username__icontains=query) | Q(display_name__icontains=query))
    elif query:
        users = users.filter(Q(username__istartswith=query) | Q(display_name__istartswith=query))
    return users.order_by("username")


def device_list_for_user(*, user: User) -> QuerySet[Device]:
    return Device.objects.filter(user=user).order_by("-last_seen_at", "-pk")


def access_device(*, user: User, device_id: int | None = None, token: str | None = None) -> Device:
    """The user's device by id or push token; someone else's answers as not found."""
    devices = Device.objects.filter(user=user)
    lookup = {"pk": device_id} if device_id is not None else {"token": token}
    try:
        return devices.get(**lookup)
    except Device.DoesNotExist:
        raise NotFound("No such device.") from None
