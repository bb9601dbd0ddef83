"""The chat socket. It only does networking: parse a frame, call a service,
answer. See docs/protocol.md for the frames."""

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from accounts.ws_auth import SUBPROTOCOL, credentials_still_valid
from chatproject.converters import BIGINT_MAX
from chatproject.errors import ChatError, InvalidInput, NotFound
from chatproject.realtime import send_many, user_group, write_in_thread
from messaging import chat_servers, wire
from messaging.inbox import head_if_credentials_valid, inbox_head, inbox_read_text
from messaging.selectors import message_wire
from messaging.send_queue import send_queue
from messaging.send_store import Send, Stored
from messaging.services import clean_client_msg_id, clean_text, conversation_mark_read
from messaging.socket_memory import drop_handshake_headers, slim_mailbox, socket_closed
from messaging.typing_indicator import (
    TYPING_EXPIRES_SECONDS,
    TYPING_THROTTLE_SECONDS,
    typing_recipients,
)
from presence import sweeper
from presence.services import device_beat, device_left, note_beat

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
# This server cannot deliver live events now (its Redis is unreachable):
# reconnect with back-off. (RFC 6455's 1013 says the same, but autobahn lets
# a server send only 1000 or 3000-4999.)
CLOSE_TRY_AGAIN_LATER = 4503
# How long joining the user's group may wait for Redis while connecting
# (daphne gives up on a handshake after 5 s by default).
JOIN_TIMEOUT = 3.0
# Sends of one socket not yet acked. Past this many the socket handles no
# more of its frames until its oldest is answered: one client cannot
# fill the server's send queue (CHAT_SEND_QUEUE_MAX) and crowd out the others.
SENDS_IN_FLIGHT_MAX = 16

db = database_sync_to_async


def _int_field(frame: dict[str, Any], name: str, *, optional: bool = False) -> int | None:
    value = frame.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= BIGINT_MAX:
        raise InvalidInput(f"`{name}` must be a non-negative integer.", code="invalid_frame")
    return value


class TokenBucket:
    """Frames per socket: a burst is fine, a flood is refused. All of a
    process's sockets share one database thread; one client must not hog it."""

    __slots__ = ("at", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


# Frame type -> handler method. On the class: an idle socket should not carry
# a dict of bound methods of its own (memory per socket is a goal).
FRAME_HANDLERS = {
    "hello": "on_hello",
    "send": "on_send",
    "read": "on_read",
    "typing": "on_typing",
    "heartbeat": "on_heartbeat",
}


class ChatConsumer(AsyncWebsocketConsumer):
    user_id: int
    token_key: str | None
    session_key: str | None
    # The last inbox cursor this device has been sent; None until `hello`.
    cursor: int | None = None
    # Created on first use (most sockets never type or see presence changes).
    typing_sent: dict[int, float] | None = None
    presence_versions: dict[int, int] | None = None
    leaving: "asyncio.Future[None] | None" = None
    # daphne's queue of this socket's frames, which the layer's events and the
    # send queue's answers join (None when Channels' own loop runs instead).
    mailbox: "asyncio.Queue[dict[str, Any]] | None" = None
    # This socket's sends not yet acked, oldest first (created on first send).
    sends_in_flight: "deque[tuple[Send, asyncio.Future[Stored]]] | None" = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.refuse()
            return
        self.user_id = user.pk
        self.token_key = self.scope.get("auth_token_key")
        session = self.scope.get("session") if self.token_key is None else None
        self.session_key = session.session_key if session is not None else None
        self.head_checked_at = time.monotonic()
        self.bucket = TokenBucket(settings.CHAT_SOCKET_RATE, settings.CHAT_SOCKET_BURST)
        # Join before any replay: an event committed during the replay is then
        # either in the replay or queued here, never in neither.
        try:
            async with asyncio.timeout(JOIN_TIMEOUT):
                await self.channel_layer.group_add(user_group(self.user_id), self.channel_name)
        except TimeoutError:
            # The layer cannot reach Redis: rather than a handshake left
            # hanging, a close that says "later" (the client backs off).
            logger.warning("socket of user %s: channel layer unavailable", self.user_id)
            await self.accept()
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        if not await credentials_still_valid(
            user_id=self.user_id, token_key=self.token_key, session_key=self.session_key
        ):
            await self.channel_layer.group_discard(user_group(self.user_id), self.channel_name)
            del self.user_id
            await self.refuse()
            return
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in self.scope.get("subprotocols", []) else None
        await self.accept(subprotocol=subprotocol)
        drop_handshake_headers(self.scope)
        sweeper.ensure_running()
        self.beat_recorded_at = time.monotonic()
        await device_beat(user_id=self.user_id, device=self.channel_name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """One mailbox per socket. Channels' consumer runs a task for the
        client's frames and another for the layer's messages and waits on both
        for every message; here the layer puts its messages into the queue
        daphne puts the frames in, and one loop takes them in order. Saves a
        queue, a task and an asyncio.wait per message (memory per idle socket
        and CPU per delivery, docs/benchmarks.md)."""
        mailbox = getattr(receive, "__self__", None)
        layer = get_channel_layer(self.channel_layer_alias)
        if not isinstance(mailbox, asyncio.Queue) or not hasattr(layer, "forget"):
            await super().__call__(scope, receive, send)
            return
        slim_mailbox(mailbox)
        self.mailbox = mailbox
        self.scope = scope
        self.channel_layer = layer
        self.channel_name = await layer.new_channel(mailbox=mailbox)
        self.base_send = send
        chat_servers.socket_opened()
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            # However the consumer ends (an error in connect, a cancelled
            # task), it leaves its group and its device goes offline.
            chat_servers.socket_closed()
            try:
                await asyncio.shield(self.leave())
            finally:
                layer.forget(self.channel_name)
                socket_closed()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' own dispatch first runs close_old_connections on the
        # process's one ORM thread, for every frame and every event: a thread
        # hop each (~10% of the server's CPU in the profile), and deliveries
        # queued behind other sockets' reads. Our database work goes through
        # `db()` and `write_in_thread()`, which close old connections themselves.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        if message["type"].startswith("websocket."):
            await handler(message)
            return
        try:
            await handler(message)
        except StopConsumer:
            raise
        except Exception:
            # An event this socket could not take (the database or Redis
            # failing mid-repair) must not end the socket: the next event
            # or heartbeat head check repairs from the inbox.
            logger.exception("event %r failed for socket %s", message["type"], self.channel_name)

    async def refuse(self) -> None:
        # Accept, then close with a code: a refused handshake would look the
        # same to the client as a network error, and it must log in again.
        await self.accept()
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def disconnect(self, code: int) -> None:
        await self.leave()

    async def leave(self) -> None:
        """Leave the user's group and go offline: once, in a task of its own,
        so that a cancelled caller (daphne cancels slow closers) cannot stop
        it half-way."""
        if not hasattr(self, "user_id"):
            return
        if self.leaving is None:
            self.leaving = asyncio.ensure_future(self._leave())
        await asyncio.shield(self.leaving)

    async def _leave(self) -> None:
        # Each step whatever became of the other: a layer error must not keep
        # the device online (its noted beat would be recorded after it left).
        try:
            await self.channel_layer.group_discard(user_group(self.user_id), self.channel_name)
        except Exception:
            logger.exception("leaving the group for socket %s failed", self.channel_name)
        try:
            await device_left(user_id=self.user_id, device=self.channel_name)
        except Exception:
            logger.exception("going offline for socket %s failed", self.channel_name)

    # --- sending to the client -------------------------------------------------

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":"), ensure_ascii=False))

    async def send_error(self, code: str, detail: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "code": code, "detail": detail, **extra})

    async def catch_up(self, upto: int | None = None) -> None:
        """Send every stored event after the cursor (up to `upto`), in pages."""
        assert self.cursor is not None
        while upto is None or self.cursor < upto:
            frames = await db(inbox_read_text)(user_id=self.user_id, after=self.cursor, upto=upto)
            if not frames:
                if upto is not None:
                    # Cursor order is commit order, so this cannot happen unless
                    # inbox rows were deleted by hand.
                    logger.warning(
                        "inbox of %s has no events in (%s, %s]", self.user_id, self.cursor, upto
                    )
                return
            for cursor, text in frames:
                if cursor > self.cursor:
                    await self.send(text_data=text)
                    self.cursor = cursor

    # --- frames from the client -------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Bad input gets an error frame; the connection stays open.
        if not self.bucket.take():
            # Echo the client_msg_id if the frame is a send, so the client knows
            # which message to send again (cheaply: no full parse of a flood).
            extra = {}
            if text_data and '"client_msg_id"' in text_data:
                try:
                    frame = json.loads(text_data)
                    if isinstance(frame, dict) and isinstance(frame.get("client_msg_id"), str):
                        extra["client_msg_id"] = frame["client_msg_id"][:64]
                except (ValueError, RecursionError):
                    pass
            await self.send_error("throttled", "Too many frames; slow down.", **extra)
            return
        if text_data is None:
            await self.send_error("binary_not_supported", "Send JSON text frames.")
            return
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.send_error("malformed_json", "The frame is not valid JSON.")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.send_error("invalid_frame", "A frame is a JSON object with a string `type`.")
            return
        name = FRAME_HANDLERS.get(frame["type"])
        if name is None:
            await self.send_error("unknown_type", f"Unknown frame type {frame['type'][:40]!r}.")
            return
        extra = {}
        if isinstance(frame.get("client_msg_id"), str):
            extra["client_msg_id"] = frame["client_msg_id"][:64]
        await self.answering(getattr(self, name)(frame), frame["type"], extra)

    async def answering(self, work: Awaitable[None], what: str, extra: dict[str, Any]) -> None:
        """Run a frame's work; what goes wrong becomes an error frame."""
        try:
            await work
        except ChatError as error:
            await self.send_error(error.code, error.detail, **extra)
        except Exception:
            # A bug or an outage must not take the socket down with it: the
            # client keeps its connection and may retry (sends are idempotent).
            logger.exception("%s failed for user %s", what, self.user_id)
            await self.send_error("server_error", "The server failed; try again.", **extra)

    async def on_hello(self, frame: dict[str, Any]) -> None:
        cursor = _int_field(frame, "cursor", optional=True)
        head = await db(inbox_head)(user_id=self.user_id)
        # A cursor from the future (a restored database) or too far behind to
        # replay over the socket: start from the head; the client reloads by REST.
        reset = cursor is not None and not head - settings.CHAT_MAX_REPLAY <= cursor <= head
        if cursor is None or reset:
            self.cursor = head
        else:
            self.cursor = cursor
            await self.catch_up()
        self.head_checked_at = time.monotonic()
        await self.send_json(
            {
                "type": "ready",
                "cursor": self.cursor,
                "reset": reset,
                "heartbeat_interval": settings.PRESENCE_HEARTBEAT_INTERVAL,
            }
        )

    async def on_send(self, frame: dict[str, Any]) -> None:
        send = Send(
            conversation_id=_int_field(frame, "conversation_id"),
            sender_id=self.user_id,
            client_msg_id=clean_client_msg_id(frame.get("client_msg_id")),
            text=clean_text(frame.get("text")),
        )
        if self.typing_sent:
            # The message ends the others' "typing" line, and the client
            # starts its next typing afresh: let that one through at once.
            self.typing_sent.pop(send.conversation_id, None)
        # The queue stores it and delivers to every member's devices. The
        # socket does not wait for the commit: it goes on reading frames (more
        # sends, which then share a batch) and events; the answer joins its
        # mailbox and is acked in turn.
        mailbox = self.mailbox
        if mailbox is None:
            await self.answer_send(send, await send_queue().submit(send))
            return
        in_flight = self.sends_in_flight
        if in_flight is None:
            in_flight = self.sends_in_flight = deque()

        def answered(_: "asyncio.Future[Stored] | None" = None) -> None:
            # Whichever send was answered, this releases every answered send
            # at the head of the line: the queue's lanes may answer a later
            # send (another conversation) first, and acks leave in the order
            # the client sent.
            while in_flight and in_flight[0][1].done():
                acked, done = in_flight.popleft()
                if not done.cancelled():
                    # Retrieved here: a failed send of a socket that has closed
                    # since is not logged as an exception "never retrieved".
                    done.exception()
                # Into the mailbox before the batch's events, so that the ack can
                # stand for this device's own `message.new` (answer_send).
                mailbox.put_nowait({"type": "send.stored", "send": acked, "future": done})

        while len(in_flight) >= SENDS_IN_FLIGHT_MAX:
            await asyncio.wait([in_flight[0][1]])
            answered()
        in_flight.append((send, send_queue().submit(send, then=answered)))

    async def send_stored(self, message: dict[str, Any]) -> None:
        send: Send = message["send"]
        await self.answering(
            self.answer_stored(send, message["future"]),
            "send",
            {"client_msg_id": send.client_msg_id},
        )

    async def answer_stored(self, send: Send, future: "asyncio.Future[Stored]") -> None:
        await self.answer_send(send, future.result())

    async def answer_send(self, send: Send, stored: Stored) -> None:
        if stored.status == "not_found":
            raise NotFound("No such conversation.", code="conversation_not_found")
        message = stored.message
        if message is None:
            message = wire.message_json(await db(message_wire)(message_id=stored.message_id))
        own = next((cursor for user_id, cursor in stored.events if user_id == self.user_id), None)
        if own is not None and self.cursor is not None and own == self.cursor + 1:
            # The ack is also this device's `message.new` event (the next one
            # in its inbox): one frame instead of two, and the event that the
            # layer brings later is at the cursor already, so it is skipped.
            self.cursor = own
        else:
            own = None
        duplicate = stored.status == "duplicate"
        await self.send(text_data=wire.ack_text(send.client_msg_id, duplicate, message, own))

    async def on_read(self, frame: dict[str, Any]) -> None:
        conversation_id = _int_field(frame, "conversation_id")
        seq = _int_field(frame, "seq")
        _, outgoing = await write_in_thread(
            lambda: conversation_mark_read(
                user_id=self.user_id, conversation_id=conversation_id, seq=seq
            )
        )
        await send_many(outgoing)

    async def on_typing(self, frame: dict[str, Any]) -> None:
        conversation_id = _int_field(frame, "conversation_id")
        now = time.monotonic()
        if self.typing_sent is None:
            self.typing_sent = {}
        if now - self.typing_sent.get(conversation_id, 0.0) < TYPING_THROTTLE_SECONDS:
            return
        # Throttled before the membership check too: refusals cost a query each.
        self.typing_sent[conversation_id] = now
        recipients = await db(typing_recipients)(
            user_id=self.user_id, conversation_id=conversation_id
        )
        event = {
            "type": "typing.event",
            "conversation_id": conversation_id,
            "user_id": self.user_id,
        }
        await send_many([(user_id, event) for user_id in recipients])

    async def on_heartbeat(self, frame: dict[str, Any]) -> None:
        now = time.monotonic()
        # The device's deadline is its last recorded beat plus the timeout;
        # recording every third of the timeout keeps it ahead while costing
        # Redis a third of the beats. Recorded in batches by the process's
        # presence loop, within a second.
        if now - self.beat_recorded_at >= settings.PRESENCE_TIMEOUT / 3:
            self.beat_recorded_at = now
            note_beat(user_id=self.user_id, device=self.channel_name)
        if now - self.head_checked_at < settings.CHAT_HEAD_CHECK:
            return
        await self.repair()

    async def repair(self) -> None:
        """Deliver whatever the channel layer may have dropped: a revocation (so
        look at the credentials again) or events (so read the inbox up to its
        head; nothing later would reveal a dropped last event)."""
        self.head_checked_at = time.monotonic()
        head = await db(head_if_credentials_valid)(
            user_id=self.user_id, token_key=self.token_key, session_key=self.session_key
        )
        if head is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if self.cursor is not None and head > self.cursor:
            await self.catch_up(upto=head)

    # --- events from the channel layer ---------------------------------------

    async def inbox_event(self, message: dict[str, Any]) -> None:
        frame = message["event"]
        if await self._next_event(frame["cursor"]):
            await self.send_json(frame)
            self.cursor = frame["cursor"]

    async def inbox_message(self, message: dict[str, Any]) -> None:
        """A new message's `message.new` event: the frame is spliced around
        the message's JSON text, shared by every member (messaging.wire)."""
        cursor = message["cursor"]
        if await self._next_event(cursor):
            await self.send(text_data=wire.message_event_text(cursor, message["message"]))
            self.cursor = cursor

    async def _next_event(self, cursor: int) -> bool:
        """Whether the event at `cursor` is to be sent now; sends the events
        before it from the inbox first if their deliveries are missing."""
        if self.cursor is None or cursor <= self.cursor:
            # Before `hello` the replay will include it; at or below the cursor
            # this device has it already.
            return False
        if cursor > self.cursor + 1:
            # A gap: an earlier event's delivery is late or was dropped by the
            # layer. It is committed (ours is), so read it from the inbox.
            await self.catch_up(upto=cursor - 1)
        return True

    async def inbox_check(self, message: dict[str, Any]) -> None:
        # Events were stored that may not have been sent live (a chat server
        # lost its database connection mid-batch).
        if hasattr(self, "user_id"):
            await self.repair()

    async def layer_gap(self, message: dict[str, Any]) -> None:
        # The layer could not deliver everything (this socket fell behind, or
        # Redis was briefly lost): it says so instead of dropping in silence.
        self.channel_layer.gap_seen(self.channel_name)
        if hasattr(self, "user_id"):
            await self.repair()

    async def typing_event(self, message: dict[str, Any]) -> None:
        await self.send_json(
            {
                "type": "typing",
                "conversation_id": message["conversation_id"],
                "user_id": message["user_id"],
                "expires_in": TYPING_EXPIRES_SECONDS,
            }
        )

    async def presence_event(self, message: dict[str, Any]) -> None:
        frame = message["frame"]
        # Announcements from different chat servers can arrive out of order;
        # the version says which change is newer.
        if self.presence_versions is None:
            self.presence_versions = {}
        if frame["version"] <= self.presence_versions.get(frame["user_id"], 0):
            return
        self.presence_versions[frame["user_id"]] = frame["version"]
        await self.send_json(frame)

    async def auth_revoked(self, event: dict[str, Any]) -> None:
        # An event naming neither a token nor a session revokes every socket of the
        # user (deactivation, password change); otherwise only the one credential's.
        token_key, session_key = event.get("token_key"), event.get("session_key")
        everything = token_key is None and session_key is None
        if (
            everything
            or (token_key is not None and token_key == self.token_key)
            or (session_key is not None and session_key == self.session_key)
        ):
            await self.close(code=CLOSE_UNAUTHENTICATED)
