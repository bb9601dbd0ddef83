"""Where presence lives: which devices of a user are beating, until when.

Two stores with one behaviour: Redis (shared by every chat server; each
operation one atomic Lua script) and process memory for the embedded default.
Every operation reports whether the user's state *changed*, decided atomically,
so exactly one process announces each change, never one per beat.
"""

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import redis.asyncio as aredis
from django.conf import settings


@dataclass(frozen=True)
class Status:
    user_id: int
    online: bool
    last_active_at: float | None  # unix time of the last beat, or of a live device's close
    version: int = 0  # of the last announced change


@dataclass(frozen=True)
class Beat:
    user_id: int
    device: str
    at: float


class PresenceStore(Protocol):
    # The writes answer 0 when the user's state did not change, else the new
    # version of the user's state (it grows with each change, so announcements
    # that arrive out of order can be told apart).

    async def beat(self, user_id: int, device: str, now: float, ttl: float) -> int:
        """Record a beat; a version when the user just came online."""

    async def beat_many(self, beats: list[Beat], ttl: float) -> list[int | Exception]:
        """Record many beats at once: `beat`'s answer for each, or the error
        that beat met (the others are recorded)."""

    async def leave(self, user_id: int, device: str, now: float) -> int:
        """Forget a device; a version when that was the user's last live device."""

    async def leave_many(self, devices: list[tuple[int, str]], now: float) -> list[int | Exception]:
        """Forget many devices (user id, device) at once: `leave`'s answer for
        each, in order, or the error it met."""

    async def expired(self, now: float, limit: int) -> list[tuple[int, str]]:
        """Devices whose beat is overdue (candidates for `expire`)."""

    async def expire(self, user_id: int, device: str, now: float) -> int:
        """Drop an overdue device; a version when the user just went offline.
        Only one caller wins a given device, so only one announces it."""

    def statuses(self, user_ids: list[int], now: float) -> list[Status]: ...


# KEYS: the user's device zset (device -> deadline), the global deadline zset
# ("user:device" -> deadline), the user's last-beat time, the user's announced
# state, the user's state version. ARGV: device, "user:device", now[, deadline].
# The announced state makes changes alternate online/offline exactly: a device
# that timed out but is not swept yet cannot make a second "online".
# A new version: the Redis clock in microseconds, and above the previous one
# even if the clock stepped back, so versions keep growing after Redis loses
# its data (an INCR would start again at 1 and look stale to every client).
_NEXT_VERSION = """
local function next_version()
  local t = redis.call('TIME')
  local v = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local prev = tonumber(redis.call('GET', KEYS[5]) or '0')
  if v <= prev then v = prev + 1 end
  redis.call('SET', KEYS[5], string.format('%d', v))
  return v
end
"""

_BEAT = (
    _NEXT_VERSION
    + """
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('GET', KEYS[4]) ~= '1' then
  redis.call('SET', KEYS[4], '1')
  return next_version()
end
return 0
"""
)

_GONE = (
    _NEXT_VERSION
    + """
local left = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[3], '+inf')
if left == 0 and redis.call('GET', KEYS[4]) == '1' then
  redis.call('SET', KEYS[4], '0')
  return next_version()
end
return 0
"""
)

# A live device that closes was active until then: "last seen" is the close,
# not its last beat (up to a heartbeat earlier), as the offline event says.
# One whose beats had already run out (swept, or about to be) was last seen
# at its last beat, which the sweep's offline event announced.
_LEAVE = (
    """
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
if deadline and tonumber(deadline) > tonumber(ARGV[3]) then
  redis.call('SET', KEYS[3], ARGV[3])
end
"""
    + _GONE
)

_EXPIRE = (
    """
local deadline = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not deadline or tonumber(deadline) > tonumber(ARGV[3]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
"""
    + _GONE
)


class RedisPresenceStore:
    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = f"{prefix}:presence"
        self.url = url
        self._async: aredis.Redis | None = None
        self.sync = redis.Redis.from_url(url)

    @property
    def client(self) -> aredis.Redis:
        if self._async is None:
            # A blocking pool: redis-py's default asyncio pool raises
            # MaxConnectionsError when a burst of beats has every connection
            # out (seen at 2,000 beating sockets); these wait for one instead.
            pool = aredis.BlockingConnectionPool.from_url(
                self.url, max_connections=settings.REDIS_MAX_CONNECTIONS // 4, timeout=10
            )
            self._async = aredis.Redis(connection_pool=pool)
        return self._async

    def _keys(self, user_id: int) -> list[str]:
        return [
            f"{self.prefix}:devices:{user_id}",
            f"{self.prefix}:deadlines",
            f"{self.prefix}:last:{user_id}",
            f"{self.prefix}:state:{user_id}",
            f"{self.prefix}:version:{user_id}",
        ]

    def _script_args(self, user_id: int, device: str, *args: float) -> list[Any]:
        """What follows the script in EVAL: its keys and ARGV (see the scripts)."""
        keys = self._keys(user_id)
        return [len(keys), *keys, device, f"{user_id}:{device}", *args]

    async def _run(self, script: str, user_id: int, device: str, *args: float) -> int:
        return int(await self.client.eval(script, *self._script_args(user_id, device, *args)))

    async def beat(self, user_id: int, device: str, now: float, ttl: float) -> int:
        return await self._run(_BEAT, user_id, device, now, now + ttl)

    async def _run_many(self, script: str, calls: list[list[Any]]) -> list[int | Exception]:
        # One round trip for all: an awaited call each was ~0.45 ms of the
        # event loop. EVAL rather than EVALSHA: Redis caches the compiled
        # script either way, and a pipeline of EVALSHA asks SCRIPT EXISTS first.
        pipe = self.client.pipeline(transaction=False)
        for args in calls:
            pipe.eval(script, *args)
        replies = await pipe.execute(raise_on_error=False)
        return [r if isinstance(r, Exception) else int(r) for r in replies]

    async def beat_many(self, beats: list[Beat], ttl: float) -> list[int | Exception]:
        return await self._run_many(
            _BEAT, [self._script_args(b.user_id, b.device, b.at, b.at + ttl) for b in beats]
        )

    async def leave(self, user_id: int, device: str, now: float) -> int:
        return await self._run(_LEAVE, user_id, device, now)

    async def leave_many(self, devices: list[tuple[int, str]], now: float) -> list[int | Exception]:
        return await self._run_many(
            _LEAVE, [self._script_args(user_id, device, now) for user_id, device in devices]
        )

    async def expired(self, now: float, limit: int) -> list[tuple[int, str]]:
        members = await self.client.zrangebyscore(
            f"{self.prefix}:deadlines", "-inf", now, start=0, num=limit
        )
        found = []
        for member in members:
            user_id, _, device = member.decode().partition(":")
            found.append((int(user_id), device))
        return found

    async def expire(self, user_id: int, device: str, now: float) -> int:
        return await self._run(_EXPIRE, user_id, device, now)

    def statuses(self, user_ids: list[int], now: float) -> list[Status]:
        pipe = self.sync.pipeline(transaction=False)
        for user_id in user_ids:
            devices, _, last, _, version = self._keys(user_id)
            pipe.zcount(devices, f"({now}", "+inf")
            pipe.get(last)
            pipe.get(version)
        replies = pipe.execute()
        statuses = []
        for i, user_id in enumerate(user_ids):
            live, last, version = replies[3 * i : 3 * i + 3]
            statuses.append(
                Status(
                    user_id=user_id,
                    online=live > 0,
                    last_active_at=float(last) if last else None,
                    version=int(version or 0),
                )
            )
        return statuses


class MemoryPresenceStore:
    """One process only: the embedded default (`make run` without Redis)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deadlines: dict[int, dict[str, float]] = {}
        self.last: dict[int, float] = {}
        self.announced_online: set[int] = set()
        self.versions: dict[int, int] = {}

    def _changed(self, user_id: int) -> int:
        # Microseconds, like the Redis store's versions, and always growing.
        version = max(time.time_ns() // 1000, self.versions.get(user_id, 0) + 1)
        self.versions[user_id] = version
        return version

    def _live(self, user_id: int, now: float) -> int:
        # Overdue devices stay listed until `expire` takes them, as in Redis.
        return sum(d > now for d in self.deadlines.get(user_id, {}).values())

    async def beat(self, user_id: int, device: str, now: float, ttl: float) -> int:
        with self.lock:
            self.deadlines.setdefault(user_id, {})[device] = now + ttl
            self.last[user_id] = now
            if user_id in self.announced_online:
                return 0
            self.announced_online.add(user_id)
            return self._changed(user_id)

    async def beat_many(self, beats: list[Beat], ttl: float) -> list[int | Exception]:
        return [await self.beat(b.user_id, b.device, b.at, ttl) for b in beats]

    def _gone(self, user_id: int, now: float) -> int:
        if self._live(user_id, now) or user_id not in self.announced_online:
            return 0
        self.announced_online.discard(user_id)
        return self._changed(user_id)

    async def leave(self, user_id: int, device: str, now: float) -> int:
        with self.lock:
            deadline = self.deadlines.get(user_id, {}).pop(device, None)
            if deadline is not None and deadline > now:
                self.last[user_id] = now  # live until it closed (see _LEAVE)
            return self._gone(user_id, now)

    async def leave_many(self, devices: list[tuple[int, str]], now: float) -> list[int | Exception]:
        return [await self.leave(user_id, device, now) for user_id, device in devices]

    async def expired(self, now: float, limit: int) -> list[tuple[int, str]]:
        with self.lock:
            return [
                (user_id, device)
                for user_id, devices in self.deadlines.items()
                for device, deadline in devices.items()
                if deadline <= now
            ][:limit]

    async def expire(self, user_id: int, device: str, now: float) -> int:
        with self.lock:
            devices = self.deadlines.get(user_id, {})
            deadline = devices.get(device)
            if deadline is None or deadline > now:
                return 0
            del devices[device]
            return self._gone(user_id, now)

    def statuses(self, user_ids: list[int], now: float) -> list[Status]:
        with self.lock:
            return [
                Status(u, bool(self._live(u, now)), self.last.get(u), self.versions.get(u, 0))
                for u in user_ids
            ]


_store: PresenceStore | None = None
_store_lock = threading.Lock()


def get_store() -> PresenceStore:
    global _store
    with _store_lock:
        if _store is None:
            _store = (
                RedisPresenceStore(settings.REDIS_URL, settings.REDIS_PREFIX)
                if settings.REDIS_URL
                else MemoryPresenceStore()
            )
        return _store


def now() -> float:
    return time.time()
