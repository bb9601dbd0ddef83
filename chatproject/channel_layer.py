"""Our channel layer: one Redis PUBLISH per group message, fan-out in the process.

Why not channels_redis (measured in docs/benchmarks.md, FIELD-NOTES):
- its core layer costs ~1 ms of CPU per `group_send` and, past its capacity,
  drops group messages for every socket of a process, logging at INFO;
- its pub/sub layer sends one PUBLISH at a time under a lock and subscribes
  every socket's own channel in Redis.

Here a process subscribes once per *group* it has sockets in (a user's
`user.<id>`), on one pub/sub connection; a batch of group messages is one
pipelined PUBLISH round trip; the reader task hands each message to the local
sockets of its group. What the process's event loop sends reaches its own
sockets at once, without the Redis round trip: the payload names the process
it came from, and the reader skips its own. Only groups that another process
listens to are published at all (one PUBSUB NUMSUB per batch, asked after the
commit: see `_heard_elsewhere`); with every device of a conversation on this
server, a message is never published. Sockets' own channels stay in the
process (a `send` to one travels through the process's Redis channel, so
/healthz sees a real round trip).

Delivery is at most once, like every channel layer, but never silently
short: a socket whose queue is full, and every socket after the pub/sub
connection was lost, gets one `layer.gap` message; other processes' sockets
of users whose publishes this process may have skipped meanwhile get an
`inbox.check`. The chat consumer answers both by reading its inbox
(everything that matters is stored first).

Without a Redis URL (the embedded `make run`) the same layer works inside the
process.
"""

import asyncio
import contextlib
import logging
import random
import socket
import string
from collections.abc import Iterable
from typing import Any

import msgpack
import redis
import redis.asyncio as aioredis
from channels.layers import BaseChannelLayer
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

logger = logging.getLogger(__name__)

Message = dict[str, Any]
GAP: Message = {"type": "layer.gap"}
# A group payload starts with the publishing process's id (ORIGIN_BYTES),
# or with NO_ORIGIN when no process delivered it locally (sync callers).
ORIGIN_BYTES = 12
NO_ORIGIN = b"-" * ORIGIN_BYTES
# A message is a msgpack map: its first byte is one of these (fixmap, map 16,
# map 32); an origin never starts with them.
_MSGPACK_MAP_START = {bytes([b]) for b in (*range(0x80, 0x90), 0xDE, 0xDF)}
PUBLISH_TIMEOUT = 5.0
# A dead peer is noticed in ~25 s: keepalive probes while idle, and
# TCP_USER_TIMEOUT while written data waits unacknowledged (probes stop then).
# Linux names; elsewhere what exists.
KEEPALIVE = {
    getattr(socket, name): value
    for name, value in (
        ("TCP_KEEPIDLE", 10),
        ("TCP_KEEPINTVL", 5),
        ("TCP_KEEPCNT", 3),
        ("TCP_USER_TIMEOUT", 25_000),
    )
    if hasattr(socket, name)
}


class _Channel:
    """A socket's queue; `gapped` while a gap message waits in it; `groups`
    counts the groups it is in."""

    __slots__ = ("gapped", "groups", "queue")

    def __init__(self, queue: "asyncio.Queue[Message] | None" = None) -> None:
        self.queue: asyncio.Queue[Message] = queue if queue is not None else asyncio.Queue()
        self.gapped = False
        self.groups = 0


def _random(n: int) -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=n))


class ChatChannelLayer(BaseChannelLayer):
    extensions = ["groups", "flush"]

    def __init__(
        self,
        url: str | None = None,
        prefix: str = "asgi",
        capacity: int = 1000,
        max_connections: int = 50,
        **kwargs: Any,
    ) -> None:
        super().__init__(capacity=capacity, **kwargs)
        self.url = url or None
        self.prefix = prefix
        self.max_connections = max_connections
        self.process = _random(ORIGIN_BYTES)
        self._origin = self.process.encode()
        self.channels: dict[str, _Channel] = {}
        self.groups: dict[str, set[str]] = {}
        # The loop the sockets live on: where the reader runs and local
        # deliveries happen (daphne has one).
        self.loop: asyncio.AbstractEventLoop | None = None
        self._publishers: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}
        self._sync_publisher: redis.Redis | None = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed: dict[str, asyncio.Future[None]] = {}
        self._ready = asyncio.Event()
        self._commands = asyncio.Lock()
        self._announce_gap_after: str | None = None
        # Groups Redis surely counts this process's subscription in: the last
        # SUBSCRIBE/UNSUBSCRIBE sent for them was a SUBSCRIBE, and confirmed.
        self._counted: set[str] = set()
        # SUBSCRIBE/UNSUBSCRIBE sent per group and not answered yet.
        self._unconfirmed: dict[str, int] = {}
        # Bumped whenever a group may have left `_counted` in Redis's eyes.
        self._uncounted_at = 0
        self._announcing: set[asyncio.Task[None]] = set()

    # --- names -------------------------------------------------------------

    def _redis_name(self, group: str) -> str:
        return f"{self.prefix}:g:{group}"

    def _group_name(self, redis_name: str) -> str:
        return redis_name.removeprefix(f"{self.prefix}:g:")

    @property
    def reader_name(self) -> str:
        """The pub/sub connection's CLIENT name, to find it in CLIENT LIST."""
        return f"{self.prefix}:reader:{self.process}"

    @property
    def _process_channel(self) -> str:
        return f"{self.prefix}:p:{self.process}"

    # --- the channel layer API --------------------------------------------

    async def new_channel(
        self, prefix: str = "specific.", mailbox: "asyncio.Queue[Message] | None" = None
    ) -> str:
        """A channel of this process. With `mailbox`, messages go straight into
        that queue (the chat consumer passes the one daphne feeds its frames
        into) instead of a queue of the channel's own that `receive` reads:
        a socket then costs one queue and no extra task (an asyncio.Queue is
        ~2.8 KB, and Channels runs a task per receive source)."""
        # A name needs no Redis (a socket must not wait here while Redis is
        # away: joining a group is where it waits, for a bounded time).
        self._start_reading()
        name = f"{prefix}{self.process}!{_random(12)}"
        self.channels[name] = _Channel(mailbox)
        return name

    def gap_seen(self, channel: str) -> None:
        """A mailbox's owner read its `layer.gap`: the next shortfall gets one too."""
        local = self.channels.get(channel)
        if local is not None:
            local.gapped = False

    def forget(self, channel: str) -> None:
        """The mailbox's owner is gone (it left its groups already)."""
        self.channels.pop(channel, None)

    async def receive(self, channel: str) -> Message:
        local = self.channels.get(channel)
        if local is None:
            local = self.channels[channel] = _Channel()
        try:
            message = await local.queue.get()
        except asyncio.CancelledError:
            # Channels cancels a consumer's receive when it exits, after the
            # consumer left its groups: then the channel is done with. (A
            # receive cancelled by a time-out keeps a channel still in a group.)
            if local.groups == 0:
                self.channels.pop(channel, None)
            raise
        if message is GAP:
            local.gapped = False
        return message

    async def send(self, channel: str, message: Message) -> None:
        if self.url is None:
            self._deliver_to(channel, message)
            return
        process = channel.partition("!")[0].rpartition(".")[2]
        payload = msgpack.packb({"c": channel, "m": message}, use_bin_type=True)
        await self._publisher().publish(f"{self.prefix}:p:{process}", payload)

    async def group_add(self, group: str, channel: str) -> None:
        await self._start()
        members = self.groups.setdefault(group, set())
        local = self.channels.get(channel)
        if local is not None and channel not in members:
            local.groups += 1
        members.add(channel)
        if self.url is not None:
            await self._subscribe(group)

    async def group_discard(self, group: str, channel: str) -> None:
        members = self.groups.get(group)
        if members is None or channel not in members:
            return
        members.discard(channel)
        local = self.channels.get(channel)
        if local is not None:
            local.groups -= 1
        if members or self.url is None:
            if not members:
                del self.groups[group]
            return
        del self.groups[group]
        future = self._subscribed.pop(group, None)
        if future is not None and not future.done():
            future.set_result(None)
        if future is None:
            return
        async with self._commands:
            if self._pubsub is not None and group not in self.groups:
                try:
                    await self._command("UNSUBSCRIBE", group)
                except Exception as error:  # redis-py: also AttributeError once lost
                    logger.warning("unsubscribe %s failed: %r", group, error)

    async def group_send(self, group: str, message: Message) -> None:
        await self.group_send_many([(group, message)])

    async def group_send_many(self, messages: Iterable[tuple[str, Message]]) -> None:
        """Many group messages at once (in order per group): this process's
        sockets at once, other processes' with a pipelined PUBLISH."""
        messages = list(messages)
        if not messages:
            return
        if self.deliver_here(messages):
            await self.publish_elsewhere(messages)
            return
        # From another event loop (a thread): nothing was delivered here.
        if self.url is None:
            if self.loop is not None and not self.loop.is_closed():
                self.loop.call_soon_threadsafe(self._deliver_groups, messages)
            return
        await self._publish(messages, NO_ORIGIN)

    def deliver_here(self, messages: list[tuple[str, Message]]) -> bool:
        """This process's sockets get the messages now, without Redis; False
        (and nothing done) when called off the sockets' event loop. Then
        `publish_elsewhere` must follow for other processes."""
        if self.loop is not None and self.loop is not asyncio.get_running_loop():
            return False
        self._deliver_groups(messages)
        return True

    async def publish_elsewhere(self, messages: list[tuple[str, Message]]) -> None:
        """Other processes' share of messages `deliver_here` delivered."""
        if self.url is None:
            return
        messages = await self._heard_elsewhere(messages)
        if messages:
            await self._publish(messages, self._origin)

    async def _publish(self, messages: list[tuple[str, Message]], origin: bytes) -> None:
        async with self._publisher().pipeline(transaction=False) as pipe:
            for channel, payload in self._packed(messages, origin):
                pipe.publish(channel, payload)
            await pipe.execute()

    async def _heard_elsewhere(
        self, messages: list[tuple[str, Message]]
    ) -> list[tuple[str, Message]]:
        """The messages of groups some other process subscribes to.

        Publishing a message nobody else reads costs this process its packing,
        the PUBLISH and reading its own copy back (~10% of a chat server's CPU
        at its limit). Skipping it is safe because callers publish after the
        commit: a process whose SUBSCRIBE Redis orders after this NUMSUB has
        its socket replay the inbox after that (the consumer joins before it
        replays), and so finds the message there."""
        groups = list(dict.fromkeys(group for group, _ in messages))
        ours = self._counted.intersection(groups)
        uncounted_at = self._uncounted_at
        counts = await self._publisher().pubsub_numsub(*map(self._redis_name, groups))
        if self._uncounted_at != uncounted_at:
            # One of ours may have ended before the count: it could hide another.
            return messages
        heard = {group for group, (_, n) in zip(groups, counts, strict=True) if n > (group in ours)}
        if len(heard) == len(groups):
            return messages
        return [(group, message) for group, message in messages if group in heard]

    def group_send_many_sync(self, messages: Iterable[tuple[str, Message]]) -> None:
        """The same from a thread without an event loop (views, tasks, admin)."""
        messages = list(messages)
        if not messages:
            return
        if self.url is None:
            if self.loop is not None and not self.loop.is_closed():
                self.loop.call_soon_threadsafe(self._deliver_groups, messages)
            return
        if self._sync_publisher is None:
            pool = redis.BlockingConnectionPool.from_url(self.url, **self._pool_options())
            self._sync_publisher = redis.Redis(connection_pool=pool)
        with self._sync_publisher.pipeline(transaction=False) as pipe:
            for channel, payload in self._packed(messages, NO_ORIGIN):
                pipe.publish(channel, payload)
            pipe.execute()

    async def ping(self) -> None:
        """A round trip through Redis and back into this process (/healthz)."""
        await self._start()
        channel = await self.new_channel("healthz.")
        try:
            await self.send(channel, {"type": "healthz.ping"})
            message = await self.receive(channel)
        finally:
            self.channels.pop(channel, None)
        if message.get("type") != "healthz.ping":
            raise RuntimeError("channel layer returned a different message")

    async def close(self) -> None:
        """Stop reading and close connections (tests; daphne just exits)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        for client in self._publishers.values():
            await client.aclose()
        self._publishers.clear()

    async def flush(self) -> None:
        self.channels.clear()
        self.groups.clear()

    # --- local delivery ----------------------------------------------------

    def _deliver_to(self, channel: str, message: Message) -> None:
        local = self.channels.get(channel)
        if local is None:
            return
        if local.gapped:
            return
        if local.queue.qsize() >= self.capacity:
            # Not dropped silently: the consumer repairs from what is stored.
            self._gap(local)
            return
        local.queue.put_nowait(message)

    @staticmethod
    def _gap(local: _Channel) -> None:
        """One `layer.gap` waiting per socket is enough: it reads its inbox."""
        if not local.gapped:
            local.gapped = True
            local.queue.put_nowait(GAP)

    def _deliver_group(self, group: str, message: Message) -> None:
        for channel in self.groups.get(group, ()):
            self._deliver_to(channel, message)

    def _deliver_groups(self, messages: list[tuple[str, Message]]) -> None:
        for group, message in messages:
            self._deliver_group(group, message)

    # --- Redis -------------------------------------------------------------

    def _publisher(self) -> aioredis.Redis:
        # redis.asyncio clients belong to one event loop; async_to_sync calls
        # from threads run on loops of their own.
        loop = asyncio.get_running_loop()
        client = self._publishers.get(loop)
        if client is None:
            pool = aioredis.BlockingConnectionPool.from_url(self.url, **self._pool_options())
            client = self._publishers[loop] = aioredis.Redis(connection_pool=pool)
        return client

    def _pool_options(self) -> dict[str, Any]:
        # Bounded waits: a Redis that stops answering fails a publish in
        # seconds (the inboxes have everything) instead of stalling sends.
        return {
            "max_connections": self.max_connections,
            "timeout": PUBLISH_TIMEOUT,
            "socket_timeout": PUBLISH_TIMEOUT,
            "socket_connect_timeout": PUBLISH_TIMEOUT,
        }

    def _packed(
        self, messages: list[tuple[str, Message]], origin: bytes
    ) -> list[tuple[str, bytes]]:
        """(Redis channel, payload) of each group message, for a publishing pipeline."""
        return [
            (self._redis_name(group), origin + msgpack.packb(message, use_bin_type=True))
            for group, message in messages
        ]

    def _start_reading(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        if self.url is not None and self._reader is None:
            self._reader = asyncio.create_task(self._read(), name="channel-layer-reader")

    async def _start(self) -> None:
        self._start_reading()
        if self.url is not None:
            # Subscribing needs the reader's connection to be up.
            await self._ready.wait()

    async def _subscribe(self, group: str) -> None:
        future = self._subscribed.get(group)
        if future is None:
            future = self._subscribed[group] = asyncio.get_running_loop().create_future()
            # In a task of its own: a caller cancelled while waiting must not
            # leave the other sockets of the user waiting on a SUBSCRIBE that
            # was never sent.
            await asyncio.shield(asyncio.ensure_future(self._send_subscribe(group)))
        # Redis confirms the subscription on the reader; until then a publish
        # could miss this process (the consumer joins *before* replaying).
        await asyncio.shield(future)

    async def _send_subscribe(self, group: str) -> None:
        await self._ready.wait()
        # One command at a time on the pub/sub connection: redis-py's PubSub
        # is not safe for concurrent commands.
        async with self._commands:
            if self._pubsub is not None and group in self.groups:
                try:
                    await self._command("SUBSCRIBE", group)
                except Exception as error:  # redis-py: also AttributeError once lost
                    # The reader reconnects and re-subscribes every group,
                    # this one included; its confirmation ends the wait.
                    logger.warning("subscribe %s failed: %r", group, error)

    async def _command(self, verb: str, group: str) -> None:
        # Straight onto the reader's connection: redis-py's PubSub methods
        # reconnect by themselves on errors, which would leave a second,
        # unread subscriber connection behind; a lost connection is the
        # reader's to notice and replace.
        connection = self._pubsub.connection if self._pubsub is not None else None
        if connection is None or not connection.is_connected:
            # Sending would make redis-py open a fresh, unowned connection.
            raise redis.ConnectionError("the layer's pub/sub connection is down")
        self._sent_subscription(group)
        if verb == "UNSUBSCRIBE" and group in self._counted:
            self._counted.discard(group)
            self._uncounted_at += 1
        await connection.send_command(verb, self._redis_name(group))

    def _sent_subscription(self, group: str) -> None:
        self._unconfirmed[group] = self._unconfirmed.get(group, 0) + 1

    def _confirmed_subscription(self, group: str, subscribed: bool) -> bool:
        """Whether the group is now surely subscribed in Redis. Redis answers
        every SUBSCRIBE and UNSUBSCRIBE, in order: that is once the last one
        sent was a SUBSCRIBE and it is answered (an older SUBSCRIBE's answer,
        with an UNSUBSCRIBE after it, is not)."""
        left = self._unconfirmed.get(group, 0) - 1
        if left > 0:
            self._unconfirmed[group] = left
            return False
        self._unconfirmed.pop(group, None)
        if subscribed and group in self.groups:
            self._counted.add(group)
            return True
        return False

    def _uncount_all(self) -> None:
        """The reader's connection is gone: Redis counts none of ours now.

        Until this process noticed, it may have skipped publishing to a
        group that another process listens to (its NUMSUB counted a
        subscription of ours Redis had dropped already): those sockets
        are told to read their inboxes, as ours are with `layer.gap`."""
        hidden = list(self._counted)
        self._counted.clear()
        self._unconfirmed.clear()
        self._uncounted_at += 1
        if hidden and self.url is not None:
            check: Message = {"type": "inbox.check"}
            task = asyncio.ensure_future(self._announce([(group, check) for group in hidden]))
            self._announcing.add(task)
            task.add_done_callback(self._announcing.discard)

    async def _announce(self, messages: list[tuple[str, Message]]) -> None:
        try:
            # Our own sockets hear of it by `layer.gap`: only the others.
            await self._publish(messages, self._origin)
        except Exception as error:
            logger.warning("could not tell other servers to read inboxes: %r", error)

    async def _read(self) -> None:
        backoff = 0.1
        lost = False
        while True:
            client = aioredis.Redis.from_url(
                self.url,
                socket_timeout=None,
                socket_connect_timeout=PUBLISH_TIMEOUT,
                # A half-open connection (Redis gone without a reset) is found
                # within ~25 s instead of minutes or hours.
                socket_keepalive=True,
                socket_keepalive_options=KEEPALIVE,
                client_name=self.reader_name,
                # No silent reconnects: a lost connection must end in the
                # except below, which announces the gap.
                retry=Retry(NoBackoff(), 0, supported_errors=()),
            )
            pubsub = client.pubsub()
            try:
                async with self._commands:
                    # Re-subscribe whatever was subscribed before a reconnect.
                    names = [self._process_channel] + [self._redis_name(g) for g in self.groups]
                    # (Nothing is counted or unconfirmed here: a start, or the
                    # loss below cleared it.)
                    for group in self.groups:
                        self._sent_subscription(group)
                    await pubsub.subscribe(*names)
                    self._pubsub = pubsub
                    # Redis confirms in order: once the last name is confirmed,
                    # every publish reaches this process again, and whatever it
                    # missed while away can be repaired from the inboxes.
                    self._announce_gap_after = names[-1] if lost else None
                while True:
                    # Blocking read: a time-out per wait costs a timer each message.
                    item = await pubsub.get_message(timeout=None)
                    if item is None:
                        continue
                    try:
                        self._on_item(item)
                    except Exception:
                        # One bad payload is not a lost connection.
                        logger.exception("channel layer could not handle %r", item.get("channel"))
                    backoff = 0.1
            except asyncio.CancelledError:
                await self._close_quietly(pubsub, client)
                raise
            except Exception as error:
                logger.warning("channel layer lost Redis (%r); reconnecting", error)
                self._pubsub = None
                self._uncount_all()
                self._ready.clear()
                lost = True
                await self._close_quietly(pubsub, client)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _announce_gap(self) -> None:
        for local in list(self.channels.values()):
            self._gap(local)

    @staticmethod
    async def _close_quietly(pubsub: Any, client: aioredis.Redis) -> None:
        # A dead connection's close can hang waiting for the peer: bound it.
        try:
            async with asyncio.timeout(1.0):
                await pubsub.aclose()
                await client.aclose()
        except Exception as error:
            logger.debug("closing the lost pub/sub connection: %r", error)

    def _on_group_message(self, group: str, data: bytes) -> None:
        if data[:1] in _MSGPACK_MAP_START:
            # Published without an origin by an older version of this layer
            # (a rolling deploy): no process delivered it yet.
            body = data
        elif data.startswith(self._origin):
            return  # ours: delivered when it was sent
        else:
            body = data[ORIGIN_BYTES:]
        try:
            message = msgpack.unpackb(body, raw=False)
        except Exception:
            # Not silently short: the group's sockets read their inboxes.
            logger.exception("channel layer could not read a message for %s", group)
            for channel in self.groups.get(group, ()):
                if (local := self.channels.get(channel)) is not None:
                    self._gap(local)
            return
        self._deliver_group(group, message)

    def _on_item(self, item: dict[str, Any]) -> None:
        kind = item["type"]
        name = item["channel"].decode()
        if kind == "message":
            data = item["data"]
            if name == self._process_channel:
                message = msgpack.unpackb(data, raw=False)
                self._deliver_to(message["c"], message["m"])
            else:
                self._on_group_message(self._group_name(name), data)
        elif kind == "subscribe":
            if name == self._process_channel:
                self._ready.set()
            else:
                group = self._group_name(name)
                if self._confirmed_subscription(group, subscribed=True):
                    future = self._subscribed.get(group)
                    if future is not None and not future.done():
                        future.set_result(None)
            if name == self._announce_gap_after:
                self._announce_gap_after = None
                self._announce_gap()
        elif kind == "unsubscribe" and name != self._process_channel:
            group = self._group_name(name)
            self._confirmed_subscription(group, subscribed=False)
