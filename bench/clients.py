"""How the load generator talks to each system: connect, encode a send, parse a frame.

Systems:
- `ours`: the real app at /ws/chat/, `Authorization: Bearer`, `hello` then `send`
  frames (docs/protocol.md); a delivery is an `event` of kind `message.new`.
- `channels_tutorial`: /ws/chat/<room>/, `{"message": ...}` both ways.
- `bare_relay`: /<room>, the same `{"message": ...}` frame, relayed unchanged.

The message key travels in `client_msg_id` (ours) or `message` (baselines); the
generator keeps the intended send time of each key itself, so no clock value
travels in the payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.stats import Ledger

# Seconds between `heartbeat` frames on each socket of ours (None: none sent), and
# how many were sent in all.
HEARTBEAT_S: float | None = None
RESEND_AFTER_S = 1.0
RESENDING: set[asyncio.Task] = set()
BEATS = 0

# What a parsed frame is: (kind, key, extra). kind is one of
# "msg" (a delivery of key), "ack", "error", "ready", "event" (another inbox event), "other".
Parsed = tuple[str, str | None, Any]


def _parse_ours(text: str) -> Parsed:
    frame = json.loads(text)
    kind = frame.get("type")
    if kind == "event":
        if frame.get("kind") == "message.new":
            return "msg", frame["message"]["client_msg_id"], frame["cursor"]
        return "event", None, frame["cursor"]
    if kind == "ack":
        return "ack", frame["client_msg_id"], frame.get("duplicate")
    if kind == "ready":
        return "ready", None, frame["cursor"]
    if kind == "error":
        return "error", frame.get("client_msg_id"), frame.get("code")
    return "other", None, None


def _parse_plain(text: str) -> Parsed:
    return "msg", json.loads(text)["message"], None


@dataclass
class System:
    name: str
    port: int

    @property
    def persistent(self) -> bool:
        return self.name == "ours"

    def url(self, room: str) -> str:
        if self.name == "ours":
            return f"ws://127.0.0.1:{self.port}/ws/chat/"
        if self.name == "channels_tutorial":
            return f"ws://127.0.0.1:{self.port}/ws/chat/{room}/"
        return f"ws://127.0.0.1:{self.port}/{room}"

    def encode(self, room: str | int, key: str) -> str:
        if self.name == "ours":
            return json.dumps(
                {
                    "type": "send",
                    "conversation_id": room,
                    "client_msg_id": key,
                    "text": f"bench message {key}",
                }
            )
        return json.dumps({"message": key})

    def parse(self, text: str) -> Parsed:
        return _parse_ours(text) if self.name == "ours" else _parse_plain(text)


@dataclass(eq=False)
class Conn:
    """One client socket and what its reader saw."""

    system: System
    ws: ClientConnection
    ledger: Ledger | None = None  # deliveries expected on this socket
    acks: Ledger | None = None  # acks expected on this socket (ours)
    errors: list[Any] = field(default_factory=list)
    cursors: list[int] = field(default_factory=list)
    record_cursors: bool = False
    on_msg: Callable[[str, float], None] | None = None
    ready: asyncio.Future | None = None
    closed: bool = False
    task: asyncio.Task | None = None
    last_arrival: float = 0.0
    hello_at: float = 0.0
    beater: asyncio.Task | None = None
    # Sends refused with `overloaded` go again like the web client's
    # (static/js/app.js): after about a second, jittered. key -> frame text.
    outbox: dict[str, str] | None = None
    resent: int = 0

    def start(self) -> None:
        self.ready = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                now = time.perf_counter()
                self.last_arrival = now
                kind, key, extra = self.system.parse(text)
                if kind == "msg":
                    if self.record_cursors and extra is not None:
                        self.cursors.append(extra)
                    if self.ledger is not None:
                        self.ledger.receive(key, now)
                    if self.on_msg is not None:
                        self.on_msg(key, now)
                elif kind == "ack":
                    if self.acks is not None:
                        self.acks.receive(key, now)
                    if self.outbox is not None:
                        self.outbox.pop(key, None)
                elif kind == "error":
                    self.errors.append((key, extra))
                    if extra == "overloaded" and self.outbox is not None and key in self.outbox:
                        asyncio.get_running_loop().call_later(
                            RESEND_AFTER_S * random.uniform(0.5, 1.5), self._resend, key
                        )
                elif kind == "ready":
                    if self.ready is not None and not self.ready.done():
                        self.ready.set_result(extra)
                elif kind == "event" and self.record_cursors:
                    self.cursors.append(extra)
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            if self.ready is not None and not self.ready.done():
                self.ready.set_exception(ConnectionError("closed before ready"))

    async def send(self, text: str, key: str | None = None) -> None:
        if self.outbox is not None and key is not None:
            self.outbox[key] = text
        await self.ws.send(text)

    def _resend(self, key: str) -> None:
        # The point may be over (outbox reset) or the socket gone.
        text = self.outbox.get(key) if self.outbox is not None else None
        if self.closed or text is None:
            return
        self.resent += 1
        task = asyncio.create_task(self._send_quietly(text))
        RESENDING.add(task)
        task.add_done_callback(RESENDING.discard)

    async def _send_quietly(self, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(text)

    async def beat(self, interval: float) -> None:
        global BEATS
        await asyncio.sleep(random.uniform(0, interval))
        frame = json.dumps({"type": "heartbeat"})
        while not self.closed:
            try:
                await self.ws.send(frame)
            except ConnectionClosed:
                return
            BEATS += 1
            await asyncio.sleep(interval)

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake (fast teardown)."""
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()
        if self.task is not None:
            self.task.cancel()
        if self.beater is not None:
            self.beater.cancel()


async def open_conn(
    system: System,
    *,
    room: str = "lobby",
    token: str | None = None,
    hello: bool = True,
    cursor: int | None = None,
    ledger: Ledger | None = None,
    record_cursors: bool = False,
    timeout: float = 30.0,
) -> Conn:
    """Open a socket; for ours authenticate, send `hello` and wait for `ready`."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    ws = await connect(
        system.url(room),
        additional_headers=headers,
        compression=None,
        proxy=None,
        max_queue=1024,
        max_size=2**22,
        ping_interval=None,
        open_timeout=timeout,
        close_timeout=2,
        user_agent_header=None,
    )
    conn = Conn(system, ws, ledger=ledger, record_cursors=record_cursors)
    conn.start()
    if system.name == "ours" and hello:
        conn.hello_at = time.perf_counter()
        await ws.send(json.dumps({"type": "hello", "cursor": cursor}))
        await asyncio.wait_for(conn.ready, timeout)
        if HEARTBEAT_S:
            conn.beater = asyncio.create_task(conn.beat(HEARTBEAT_S))
    return conn
