"""The one way events leave the server for connected devices.

Every socket joins exactly one group, `user.<id>`; a service decides which
users receive an event. Sending only after the transaction commits means no
device ever sees state that could still roll back. The channel layer is
at-most-once (it says so when it falls short: `layer.gap`): anything that must
not be lost is also stored (the inbox) and recovered by cursor sync.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import close_old_connections, transaction

logger = logging.getLogger(__name__)

Outgoing = list[tuple[int, dict[str, Any]]]


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


async def send_many(messages: Outgoing) -> None:
    """All at once, however many users: this process's sockets at once, other
    servers' by one pipelined publish (chatproject/channel_layer.py)."""
    if not messages:
        return
    await _best_effort(
        get_channel_layer().group_send_many(
            (user_group(user_id), message) for user_id, message in messages
        ),
        len(messages),
    )


def send_many_in_turn(
    messages: Outgoing, previous: "asyncio.Task[None] | None"
) -> "asyncio.Task[None]":
    """The same, for a stream of batches that must arrive in order: this
    process's sockets get theirs now; the task publishes to other servers once
    `previous` (the batch before's publish) is done."""
    layer = get_channel_layer()
    grouped = [(user_group(user_id), message) for user_id, message in messages]
    if not grouped or not layer.deliver_here(grouped):
        return asyncio.create_task(_after(previous, send_many(messages)))
    publish = _best_effort(layer.publish_elsewhere(grouped), len(grouped))
    return asyncio.create_task(_after(previous, publish))


async def _after(previous: "asyncio.Task[None] | None", then: Awaitable[None]) -> None:
    if previous is not None:
        await asyncio.wait([previous])
    await then


async def _best_effort(sending: Awaitable[None], count: int) -> None:
    try:
        await sending
    except Exception as error:
        # Delivery is best effort; the stored inbox is the source of truth, and
        # sockets find a missed last event on their next head check.
        logger.error("sending %d events failed: %r", count, error)


def send_many_now(messages: Outgoing) -> None:
    """From synchronous code (views, tasks, admin): no event loop involved."""
    if not messages:
        return
    try:
        get_channel_layer().group_send_many_sync(
            (user_group(user_id), message) for user_id, message in messages
        )
    except Exception as error:
        logger.error("sending %d events failed: %r", len(messages), error)


# Set while a write runs for the chat consumer: events committed by it are
# collected and sent from the event loop afterwards, instead of blocking the
# writing thread on async_to_sync until every group_send is done.
_collected: ContextVar[Outgoing | None] = ContextVar("collected_sends", default=None)

T = TypeVar("T")


def send_many_on_commit(messages: Outgoing) -> None:
    def after_commit() -> None:
        collected = _collected.get()
        if collected is not None:
            collected.extend(messages)
        else:
            send_many_now(messages)

    # Robust: the writes are committed, and whatever fails now must not make
    # the write look failed (a resend is a duplicate, and delivers nothing).
    # (send_many_now already logs Redis errors; sockets find the inbox events
    # they missed in their inboxes, docs/protocol.md.)
    transaction.on_commit(after_commit, robust=True)


def collecting_sends(fn: Callable[[], T]) -> tuple[T, Outgoing]:
    """Run `fn` (in a worker thread) and return what it would have sent after
    commit; the caller sends it (`await send_many(...)`) from the event loop."""
    collected: Outgoing = []
    token = _collected.set(collected)
    try:
        return fn(), collected
    finally:
        _collected.reset(token)


async def write_in_thread(fn: Callable[[], T]) -> tuple[T, Outgoing]:
    """Run a write service in a pool thread with its own connection;
    return its result and what it would have sent after commit, for the
    caller to send from the event loop.

    Reads go through the process's one shared ORM thread (database_sync_to_async);
    writes would queue behind each other there and each would also hold it while
    its deliveries went out. In pool threads, transactions of different sockets
    overlap their waits on the database (and PostgreSQL's group commit), and the
    lock order in the services (conversation row, then inbox rows by user id)
    keeps them deadlock-free.
    """

    def call() -> tuple[T, Outgoing]:
        close_old_connections()
        try:
            return collecting_sends(fn)
        finally:
            close_old_connections()

    return await sync_to_async(call, thread_sensitive=False)()


def send_to_users_on_commit(user_ids: Iterable[int], message: dict[str, Any]) -> None:
    send_many_on_commit([(user_id, message) for user_id in user_ids])
