"""Service discovery: which chat servers are up, and which one a client gets.

A chat server that knows its public address (`CHAT_PUBLIC_WS_URL`) registers
it in Redis: a key holding its number of open sockets that expires after
`CHAT_SERVER_TTL` seconds unless the server renews it (every third of that),
and its address in a set. A server that dies drops out when its key expires;
one that is stopped (SIGTERM, SIGINT) removes its key at once.

`GET /api/v1/chat-server/` (any API server) picks the live server with the
fewest sockets, in one Redis script that also counts the pick against it:
between a server's renewals its count is seconds old, and a burst of clients
(every client of a server that died, reconnecting) would otherwise all be
sent to the same one. The server's next renewal replaces the estimate with
its own count. With no server registered (one process serving everything,
the embedded default), or when the registry cannot be read, the answer is
this process's address, as before.

The script builds its keys from a prefix: one Redis, not a Redis Cluster.
"""

import asyncio
import contextlib
import logging

import redis
import redis.asyncio as aredis
from django.conf import settings
from redis.commands.core import Script

from chatproject import daphne_reactor

logger = logging.getLogger(__name__)

_open_sockets = 0


def socket_opened() -> None:
    global _open_sockets
    _open_sockets += 1


def socket_closed() -> None:
    global _open_sockets
    _open_sockets -= 1


def open_sockets() -> int:
    return _open_sockets


def _servers_key() -> str:
    return f"{settings.REDIS_PREFIX}:chat-servers"


def _load_prefix() -> str:
    return f"{settings.REDIS_PREFIX}:chat-server:"


# KEYS[1]: the set of addresses; ARGV[1]: the prefix of their load keys.
# Addresses whose key expired leave the set here.
_PICK = """
local best, best_load
for _, url in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local load = redis.call('GET', ARGV[1] .. url)
  if not load then
    redis.call('SREM', KEYS[1], url)
  elseif not best or tonumber(load) < best_load then
    best, best_load = url, tonumber(load)
  end
end
if best then redis.call('INCR', ARGV[1] .. best) end
return best
"""

_scripts: dict[str, Script] = {}


def pick() -> str | None:
    """The address of the least loaded live chat server, or None if none is
    registered or Redis cannot be asked (the caller answers its own)."""
    url = settings.REDIS_URL
    if not url:
        return None
    script = _scripts.get(url)
    if script is None:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        script = _scripts[url] = client.register_script(_PICK)
    try:
        best = script(keys=[_servers_key()], args=[_load_prefix()])
    except redis.RedisError:
        logger.warning("chat server discovery: Redis unavailable, answering this server")
        return None
    return best.decode() if best is not None else None


async def _register(client: aredis.Redis, address: str, ttl: float) -> None:
    while True:
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(_load_prefix() + address, open_sockets(), px=int(ttl * 1000))
                pipe.sadd(_servers_key(), address)
                await pipe.execute()
        except Exception:
            # Redis restarting: clients are sent elsewhere until it is back.
            logger.exception("registering this chat server failed")
        await asyncio.sleep(ttl / 3)


async def _deregister(client: aredis.Redis, address: str, task: "asyncio.Task[None]") -> None:
    task.cancel()
    try:
        async with asyncio.timeout(2):
            # A renewal under way must not land after the delete.
            with contextlib.suppress(asyncio.CancelledError):
                await task
            async with client.pipeline(transaction=True) as pipe:
                pipe.delete(_load_prefix() + address)
                pipe.srem(_servers_key(), address)
                await pipe.execute()
    except Exception:
        logger.exception("deregistering this chat server failed; it expires instead")
    finally:
        await client.aclose()


def install() -> None:
    """Register this process once daphne's reactor runs (chatproject.asgi).
    Under another ASGI server, or outside daphne's server, nothing registers."""
    address = settings.CHAT_PUBLIC_WS_URL
    installed = daphne_reactor.reactor()
    if not (address and settings.REDIS_URL and installed is not None):
        return

    def start() -> None:
        loop = getattr(installed, "_asyncioEventloop", None)
        if loop is None:
            logger.warning("CHAT_PUBLIC_WS_URL is set but the reactor is not asyncio's")
            return
        client = aredis.Redis.from_url(settings.REDIS_URL)
        task = loop.create_task(_register(client, address, settings.CHAT_SERVER_TTL))
        # Stopped: new clients go elsewhere at once, not after the TTL.
        daphne_reactor.before_shutdown(installed, loop, lambda: _deregister(client, address, task))

    installed.callWhenRunning(start)
