"""Log-in tries counted per account, from every address together.

The per-address limit (accounts.throttles) slows one guesser down; many
addresses guessing one account's password get past it. Each way in (the API's
token endpoint, the web page, the admin's page) takes one of the username's
THROTTLE_LOGIN_FAILURES tries per window before it checks the password, and a
log-in that succeeds gives its try back (`user_logged_in`). So what is counted
is failures, plus tries still in flight: the check and the count are one step,
and guesses sent in parallel cannot all pass a check made before any of them
had failed (a password check takes a while on purpose). Past the limit every
log-in to the username is refused until the window ends, the right password
too. Signed-in devices and sessions are not affected.

A try that does not end signed in counts as a failure (also a non-staff
user's right password on the admin page). The count is per username as
typed, NFKC-normalised, stripped and lower-cased (as the unique constraint on
usernames is), whether or not the account exists: the answers tell nobody
which usernames exist. It lives in the cache: Redis, shared by every
process; without REDIS_URL, per process.

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
from rest_framework.throttling import SimpleRateThrottle


def _limit() -> tuple[int, int]:
    """(tries allowed, window in seconds) from a rate like "10/hour", read by
    the same code as the API's rates (DRF's parser uses no throttle state)."""
    return SimpleRateThrottle.parse_rate(None, settings.THROTTLE_LOGIN_FAILURES)  # type: ignore[arg-type]


def _keys(username: str) -> tuple[str, str]:
    # Hashed: a cache key of bounded length, whatever was typed.
    name = unicodedata.normalize("NFKC", username).strip().lower()
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    return f"login-failures:{digest}", f"login-failures-since:{digest}"


def attempt(request: Any, username: str) -> int | None:
    """Take one of `username`'s tries for this request: None when one was
    left (go on and check the password), else the seconds until the window
    ends."""
    allowed, window = _limit()
    count_key, since_key = _keys(username)
    cache.add(count_key, 0, timeout=window)
    try:
        taken = cache.incr(count_key)
    except ValueError:
        # The window ended between the two calls: this try opens the next.
        cache.add(count_key, 1, timeout=window)
        taken = 1
    if taken == 1:
        # A fixed window, from the first try in it. touch(): Django's Redis
        # incr() is EXISTS then INCR, and a key that expired in between
        # comes back without a timeout, a lock that would never end.
        cache.touch(count_key, window)
        cache.set(since_key, time.time(), timeout=window)
    if taken <= allowed:
        request.login_guard_key = count_key
        return None
    since = cache.get(since_key, time.time())
    return max(1, math.ceil(since + window - time.time()))


def on_logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """`user_logged_in` receiver (accounts.apps): a successful log-in gives
    back the try it took. Only that one: a sign-up's log-in took none."""
    count_key = getattr(request, "login_guard_key", None)
    if count_key is None:
        return
    del request.login_guard_key
    try:
        left = cache.decr(count_key)
    except ValueError:
        return  # its window has ended
    if left < 0:
        # The key expired between decr()'s two calls and came back at -1.
        cache.delete(count_key)
