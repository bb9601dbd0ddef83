"""Failed log-ins counted per account, from every address together.

The per-address limit (accounts.throttles) slows one guesser down; many
addresses guessing one account's password get past it. After
THROTTLE_LOGIN_FAILURES failed log-ins to a username within the rate's
window, every log-in to it is refused until that window ends, the right
password too, on every way in (the API's token endpoint, the web page, the
admin's page). Signed-in devices and sessions are not affected.

A failure is what Django's `authenticate()` reports (`user_login_failed`),
so every way in is counted by the same code. The count is per username as
typed (normalised, case-folded), whether or not the account exists: the
answer tells nobody which usernames exist.

The trade-off, as with every account lock: someone who knows a username can
keep its owner from signing in anew, one window at a time.
"""

import hashlib
import math
import time
import unicodedata
from typing import Any

from django.conf import settings
from django.core.cache import cache

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _limit() -> tuple[int, int]:
    """(failures allowed, window in seconds) from a rate like "10/hour"."""
    count, period = settings.THROTTLE_LOGIN_FAILURES.split("/")
    return int(count), _PERIODS[period[0]]


def _keys(username: str) -> tuple[str, str]:
    # Hashed: a cache key of bounded length, whatever was typed.
    name = unicodedata.normalize("NFKC", username).casefold()
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    return f"login-failures:{digest}", f"login-failures-since:{digest}"


def wait(username: str) -> int | None:
    """Seconds until `username` may be tried again, or None when it may now."""
    allowed, window = _limit()
    count_key, since_key = _keys(username)
    found = cache.get_many([count_key, since_key])
    if found.get(count_key, 0) < allowed:
        return None
    since = found.get(since_key, time.time())
    return max(1, math.ceil(since + window - time.time()))


def failed(username: str) -> None:
    """Count a failed log-in (a fixed window, from the first failure)."""
    _, window = _limit()
    count_key, since_key = _keys(username)
    cache.add(since_key, time.time(), timeout=window)
    cache.add(count_key, 0, timeout=window)
    try:
        cache.incr(count_key)
    except ValueError:
        # The window ended between the two calls: this failure opens the next.
        cache.add(count_key, 1, timeout=window)


def on_login_failed(sender: Any, credentials: dict[str, Any], **kwargs: Any) -> None:
    """`user_login_failed` receiver (accounts.apps)."""
    username = credentials.get("username")
    if isinstance(username, str) and username:
        failed(username)
