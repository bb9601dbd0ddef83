"""Baseline (b): a bare `websockets` + Redis pub/sub relay, the Python limit.

A client opens ws://host:port/<room> and every text frame it sends is published,
unchanged, on the Redis channel of that room; every frame published there is
written to each local socket in the room (the sender included, as in the
Channels tutorial). One subscriber connection per process; no parsing, no
storage, no checks.

    python -m bench.baselines.relay --port 8101 --redis redis://127.0.0.1:6379/12
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import signal

import redis.asyncio as aredis
from websockets.asyncio.server import ServerConnection, broadcast, serve

logger = logging.getLogger("relay")


class Relay:
    def __init__(self, redis_url: str, prefix: str) -> None:
        self.prefix = prefix
        # A blocking pool: redis-py's default asyncio pool raises MaxConnectionsError
        # once 100 publishes are in flight (seen at 4,000 msg/s over 1,000 pairs).
        pool = aredis.BlockingConnectionPool.from_url(
            redis_url, socket_timeout=None, max_connections=64, timeout=None
        )
        self.publisher = aredis.Redis(connection_pool=pool)
        self.pubsub = aredis.Redis.from_url(redis_url, socket_timeout=None).pubsub()
        self.rooms: dict[str, set[ServerConnection]] = {}
        self.subscribed = asyncio.Event()

    def channel(self, room: str) -> str:
        return f"{self.prefix}:{room}"

    async def join(self, room: str, ws: ServerConnection) -> None:
        members = self.rooms.setdefault(room, set())
        members.add(ws)
        if len(members) == 1:
            await self.pubsub.subscribe(self.channel(room))

    async def leave(self, room: str, ws: ServerConnection) -> None:
        members = self.rooms.get(room)
        if members is None:
            return
        members.discard(ws)
        if not members:
            del self.rooms[room]
            await self.pubsub.unsubscribe(self.channel(room))

    async def pump(self) -> None:
        """Redis -> sockets."""
        # Subscribe to something first: listen() returns at once without a subscription.
        await self.pubsub.subscribe(f"{self.prefix}:__keepalive__")
        self.subscribed.set()
        cut = len(self.prefix) + 1
        async for item in self.pubsub.listen():
            if item["type"] != "message":
                continue
            room = item["channel"][cut:].decode()
            members = self.rooms.get(room)
            if members:
                broadcast(members, item["data"].decode())

    async def handler(self, ws: ServerConnection) -> None:
        room = (ws.request.path if ws.request else "/").strip("/") or "lobby"
        await self.join(room, ws)
        channel = self.channel(room)
        try:
            async for text in ws:
                await self.publisher.publish(channel, text)
        finally:
            await self.leave(room, ws)


async def main(port: int, redis_url: str, prefix: str) -> None:
    relay = Relay(redis_url, prefix)
    pump = asyncio.create_task(relay.pump())
    await relay.subscribed.wait()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        relay.handler,
        "127.0.0.1",
        port,
        compression=None,
        max_queue=256,
        backlog=4096,
    ):
        print(f"relay listening on {port}", flush=True)
        await stop
    pump.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pump


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--prefix", default="benchrelay")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.port, args.redis, args.prefix))
