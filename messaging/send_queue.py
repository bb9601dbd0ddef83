"""The chat server's send path: every socket's sends, stored in batches.

The queue has a few lanes (CHAT_SEND_CONNECTIONS), each with its own async
connection; a conversation always goes to the same lane. A lane's task takes
whatever sends are waiting for it, stores them with one call of
`messaging_send_batch` (autocommit: the call is its transaction, so a result
means committed), answers each sender, hands every delivery of the batch to
this process's sockets at once and publishes the rest to other servers while
its next batch is already in PostgreSQL. Under light load a batch is one
message and costs one round trip; under heavy load the batch grows while the
previous one is in PostgreSQL, so the commit cost is shared. A socket does
not wait for its send's commit before reading its next frame, so its sends
share batches too. This replaced ~10 ORM statements and a commit per message
on the process's one ORM thread (docs/benchmarks.md: 100 msg/s before).

The queue is bounded: past CHAT_SEND_QUEUE_MAX waiting sends, a send is
refused with `overloaded` (the client retries later with the same
client_msg_id) instead of waiting without limit or being dropped.

Other databases (the embedded SQLite of `make run`) store each send with the
ORM service in a worker thread; the queue, its bound and the answers are the
same.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.utils import timezone

from chatproject import daphne_reactor
from chatproject.errors import ChatError
from chatproject.realtime import Outgoing, send_many, send_many_in_turn, write_in_thread
from messaging import send_store, wire
from messaging.send_store import Send, Stored
from messaging.services import message_send_orm
from notifications.tasks import push_new_messages

logger = logging.getLogger(__name__)

# Seconds a batch may take in PostgreSQL before its senders get an error.
BATCH_TIMEOUT = 10.0
# Past this many batches' publishes to other servers under way, the queue
# waits for the oldest before it stores more.
MAX_PUBLISHING = 4


class Overloaded(ChatError):
    code = "overloaded"
    status = 503


@dataclass
class _Waiting:
    send: Send
    future: asyncio.Future[Stored]
    then: "Callable[[asyncio.Future[Stored]], None] | None"

    def answer(self, result: Stored | BaseException) -> None:
        if self.future.done():
            return
        if isinstance(result, BaseException):
            self.future.set_exception(result)
        else:
            self.future.set_result(result)
        if self.then is not None:
            try:
                self.then(self.future)
            except Exception:
                # One socket's hook must not stop the rest of a committed
                # batch from being answered and delivered.
                logger.exception("answering send %s failed", self.send.client_msg_id)


class SendQueue:
    def __init__(
        self, *, max_waiting: int, max_batch: int, push_window: float, lanes: int = 1
    ) -> None:
        self.max_batch = max_batch
        self.pushes = PushCoalescer(push_window)
        self.postgresql = connections["default"].vendor == "postgresql"
        # The embedded SQLite takes one writer at a time: one lane there.
        lanes = lanes if self.postgresql else 1
        # Each lane has its share of the bound, so sends piling up behind a
        # lock in one lane do not get the other lanes' sends refused.
        self.lane_max_waiting = -(-max_waiting // lanes)
        self.lanes = [_Lane(self, n) for n in range(lanes)]
        # Earlier batches' publishes to other servers still under way, oldest
        # first; each waits for the one before it, so they leave in batch order.
        self.publishing: deque[asyncio.Task[None]] = deque()

    def submit(
        self, send: Send, then: "Callable[[asyncio.Future[Stored]], None] | None" = None
    ) -> "asyncio.Future[Stored]":
        """Queue one send; the future is done once it is committed (or was
        stored before). The sends of one conversation are answered in the
        order they were submitted; another conversation's may be answered
        before them (it may be in another lane). `then(future)` is called
        when the queue answers, before the batch's deliveries are handed to
        this process's sockets (a done callback would run only after them)."""
        lane = self.lanes[send.conversation_id % len(self.lanes)]
        if len(lane.waiting) >= self.lane_max_waiting:
            raise Overloaded("The server is busy; send again in a moment.")
        return lane.submit(send, then)

    async def close(self) -> None:
        """Stop storing (sends still waiting are answered with an error) and
        close the connections. For tests."""
        tasks = [t for t in (*(lane.task for lane in self.lanes), self.pushes.task) if t]
        tasks.extend(self.publishing)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in self.lanes:
            if lane.connection is not None:
                await lane.connection.close()

    async def finish(self, timeout: float = 5.0) -> None:
        """The server is stopping: from now on pushes are enqueued at once;
        let the lanes store and deliver what they hold, and the pushes
        waiting for their window be enqueued, for up to `timeout` seconds,
        instead of losing them with the process."""
        self.pushes.hurry()
        try:
            async with asyncio.timeout(timeout):
                while any(lane.busy or lane.waiting for lane in self.lanes):
                    await asyncio.sleep(0.01)
                if self.publishing:
                    await asyncio.wait(list(self.publishing))
                await self.pushes.flushed()
        except TimeoutError:
            logger.warning("stopped before every send was stored, delivered and pushed")

    def deliver(
        self, stored: Sequence[Stored | Exception], outgoing: Outgoing | None
    ) -> "asyncio.Task[None] | None":
        """Hand a committed batch's deliveries out: this process's sockets
        get theirs now, other servers' are published after the earlier
        batches'. Returns the oldest publish still under way when more than
        MAX_PUBLISHING are (the lane waits for it before it stores more)."""
        if outgoing is None:
            created = [s for s in stored if isinstance(s, Stored) and s.status == "created"]
            outgoing = send_store.outgoing(created)
            self.pushes.add(s.message_id for s in created)
        publishing = self.publishing
        while publishing and publishing[0].done():
            publishing.popleft()
        publishing.append(send_many_in_turn(outgoing, publishing[-1] if publishing else None))
        return publishing[0] if len(publishing) > MAX_PUBLISHING else None


class _Lane:
    """One connection and the sends waiting for it. A lane stores one batch
    at a time, so the sends it takes are committed and answered in order;
    the queue gives each conversation one lane, so a conversation's sends
    keep their order however many lanes there are. Lanes run side by side:
    while one batch commits, another lane's is already in PostgreSQL
    (docs/benchmarks.md, session 12). A user in conversations of two lanes
    has one inbox: its row lock orders the two lanes' events, so cursor order
    is still commit order, and a socket handed the later one first reads the
    earlier one from the inbox (ChatConsumer._next_event)."""

    def __init__(self, queue: SendQueue, number: int) -> None:
        self.queue = queue
        self.name = f"send-queue-{number}"
        self.waiting: list[_Waiting] = []
        self.wakeup = asyncio.Event()
        self.connection: psycopg.AsyncConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.uncertain: list[Send] = []
        # A batch is being stored (taken off `waiting`, not yet delivered).
        self.busy = False

    def submit(
        self, send: Send, then: "Callable[[asyncio.Future[Stored]], None] | None"
    ) -> "asyncio.Future[Stored]":
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiting(send, future, then))
        self.wakeup.set()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name=self.name)
        return future

    async def _run(self) -> None:
        max_batch = self.queue.max_batch
        batch: list[_Waiting] = []
        try:
            while True:
                await self.wakeup.wait()
                self.wakeup.clear()
                while self.waiting:
                    batch = self.waiting[:max_batch]
                    del self.waiting[:max_batch]
                    self.busy = True
                    try:
                        await self._store_batch(batch)
                    except Exception as error:
                        # Never strand a sender: whatever broke, each one hears of it.
                        logger.exception("send batch failed")
                        for waiting in batch:
                            waiting.answer(error)
                    finally:
                        self.busy = False
                    batch = []
        except asyncio.CancelledError:
            # Stopped (close()). A socket holds its later acks back until its
            # earlier sends are answered, so none is left unanswered.
            stopped = Unknown("The send queue stopped.")
            for waiting in (*batch, *self.waiting):
                waiting.answer(stopped)
            self.waiting.clear()
            raise

    async def _store_batch(self, batch: list[_Waiting]) -> None:
        sends, where = send_store.distinct([w.send for w in batch])
        try:
            if self.queue.postgresql:
                stored, outgoing = await self._store_sql(sends), None
            else:
                stored, outgoing = await _store_orm(sends)
        except Exception as error:
            retry = not isinstance(error, Unknown | psycopg.errors.QueryCanceled)
            if len(batch) > 1 and self.queue.postgresql and retry:
                # Rolled back: one send must not fail the others; store them
                # one by one. (The ORM path answers each send on its own.)
                logger.warning("send batch of %d failed (%r); retrying singly", len(batch), error)
                for waiting in batch:
                    await self._store_batch([waiting])
                return
            for waiting in batch:
                waiting.answer(error)
            return
        for waiting, result in zip(batch, send_store.answers(stored, where), strict=True):
            waiting.answer(result)
        # The loop does not yield before it sends the next batch to
        # PostgreSQL: waiting here for the acks and publishes to go out first
        # left PostgreSQL idle for a quarter of the time at 2,000 msg/s
        # (docs/benchmarks.md, session 7).
        oldest = self.queue.deliver(stored, outgoing)
        if oldest is not None:
            # A slow Redis slows the queue down instead of piling up tasks.
            await asyncio.wait([oldest])

    async def _store_sql(self, sends: Sequence[Send]) -> list[Stored]:
        for attempt in (1, 2):
            connected = False
            try:
                if self.connection is None or self.connection.closed:
                    self.connection = await _connect()
                if self.uncertain:
                    # Until it succeeds, whatever made it fail last time.
                    await self._reconcile()
                connected = True
                return await self._call(sends)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                # Rolled back, the connection is fine: once more.
                if attempt == 2:
                    raise
            except psycopg.errors.QueryCanceled:
                raise  # statement_timeout: rolled back, nothing stored
            except (psycopg.OperationalError, TimeoutError) as error:
                # The connection is gone, or PostgreSQL stopped answering:
                # whether the batch committed is unknown. The senders get an
                # error and resend (idempotent on client_msg_id); what did
                # commit is found and announced on the next connection.
                if connected:
                    self._add_uncertain(sends)
                if self.connection is not None:
                    await self.connection.close()
                self.connection = None
                raise Unknown(str(error)) from error
        raise AssertionError("unreachable")

    def _add_uncertain(self, sends: Sequence[Send]) -> None:
        known = {send_store.key(s) for s in self.uncertain}
        self.uncertain.extend(s for s in sends if send_store.key(s) not in known)

    async def _call(self, sends: Sequence[Send]) -> list[Stored]:
        assert self.connection is not None
        async with asyncio.timeout(BATCH_TIMEOUT), self.connection.cursor() as cursor:
            await cursor.execute(send_store.SQL, send_store.params(sends, timezone.now()))
            rows = await cursor.fetchall()
        return [send_store.parse(row) for row in rows]

    async def _reconcile(self) -> None:
        """Sends whose batch may have committed unseen: if stored, their members
        were never told and nobody was pushed. A resend is only a `duplicate`
        (no deliveries), so tell the members' sockets to read their inboxes,
        and push."""
        assert self.connection is not None
        sends = list(self.uncertain)
        async with asyncio.timeout(BATCH_TIMEOUT), self.connection.cursor() as cursor:
            await cursor.execute(send_store.FIND_STORED, send_store.keys(sends))
            found = await cursor.fetchall()
            if not found:
                self.uncertain = []
                return
            await cursor.execute(
                "SELECT DISTINCT user_id FROM messaging_membership WHERE conversation_id = ANY(%s)",
                [sorted({conversation_id for _, conversation_id in found})],
            )
            members = [user_id for (user_id,) in await cursor.fetchall()]
        self.uncertain = []
        logger.warning("%d sends of a lost batch had been stored; announcing them", len(found))
        self.queue.pushes.add(message_id for message_id, _ in found)
        await send_many([(user_id, {"type": "inbox.check"}) for user_id in members])


class Unknown(Exception):
    """A batch whose outcome is unknown (the connection was lost)."""


def psycopg_params() -> dict[str, Any]:
    """The default database's settings, for a psycopg connection of our own."""
    params = connections["default"].get_connection_params()
    for django_only in ("cursor_factory", "context"):
        params.pop(django_only, None)
    return params


async def _connect() -> psycopg.AsyncConnection:
    params = psycopg_params()
    params.setdefault("connect_timeout", 5)
    async with asyncio.timeout(BATCH_TIMEOUT):
        connection = await psycopg.AsyncConnection.connect(**params, autocommit=True)
        try:
            # A batch that waits on locks this long is given up (rolled back).
            await connection.execute(f"SET statement_timeout = {int(BATCH_TIMEOUT * 1000) - 1000}")
        except BaseException:
            await connection.close()
            raise
    return connection


class PushCoalescer:
    """One Celery task per `window` seconds for all messages stored in it.

    Publishing a task costs ~1 ms of CPU (kombu), as much as storing a whole
    batch: per batch it was 40% of the server's CPU at 100 msg/s. A push
    reaches a phone that has no socket open, so a tenth of a second more
    does not show.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self.waiting: list[int] = []
        self.task: asyncio.Task[None] | None = None
        # Set when the server is stopping: no more waiting for the window.
        self.hurried = asyncio.Event()

    def add(self, message_ids: Iterable[int]) -> None:
        self.waiting.extend(message_ids)
        if self.waiting and (self.task is None or self.task.done()):
            self.task = asyncio.create_task(self._flush_later(), name="push-coalescer")

    def hurry(self) -> None:
        """Enqueue what waits, and from now on what comes, at once."""
        self.hurried.set()

    async def flushed(self) -> None:
        """Wait until nothing waits to be enqueued."""
        while self.task is not None and not self.task.done():
            await asyncio.wait([self.task])

    async def _flush_later(self) -> None:
        # Ids added while a publish is under way go out with the next one.
        while self.waiting:
            if not self.hurried.is_set():
                with suppress(TimeoutError):
                    async with asyncio.timeout(self.window):
                        await self.hurried.wait()
            message_ids, self.waiting = self.waiting, []
            await self._enqueue(message_ids)

    async def _enqueue(self, message_ids: list[int]) -> None:
        try:
            # Celery's publish is blocking I/O: keep it off the event loop.
            await sync_to_async(_enqueue_pushes, thread_sensitive=False)(message_ids)
        except Exception:
            logger.exception("could not enqueue pushes for %d messages", len(message_ids))


def _enqueue_pushes(message_ids: list[int]) -> None:
    # Celery writes a repr of the arguments into every task message for its
    # logs; of a few thousand ids that took as long as the publish itself.
    push_new_messages.apply_async((message_ids,), argsrepr=f"([{len(message_ids)} message ids],)")


async def _store_orm(sends: Sequence[Send]) -> tuple[list[Stored | Exception], Outgoing]:
    # One write per send, each its own transaction (SQLite has one writer at
    # a time anyway): a refused send does not undo the others.
    stored: list[Stored | Exception] = []
    outgoing: Outgoing = []
    for send in sends:
        try:
            result, sent = await write_in_thread(lambda send=send: message_send_orm(send))
        except ChatError:
            stored.append(Stored("not_found", None))
            continue
        except Exception as error:
            # Only this send's transaction rolled back ("database is locked"):
            # its sender gets the error and resends. Raising would lose the
            # live deliveries of the sends before it, already committed: their
            # resends would come back duplicates, which deliver nothing.
            stored.append(error)
            continue
        status = "created" if result.created else "duplicate"
        message = wire.message_json(wire.message_dict(result.message))
        stored.append(Stored(status, result.message.pk, message))
        outgoing.extend(sent)
    return stored, outgoing


_queues: dict[asyncio.AbstractEventLoop, SendQueue] = {}


def send_queue() -> SendQueue:
    """This process's queue (one per event loop: daphne has one)."""
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = SendQueue(
            max_waiting=settings.CHAT_SEND_QUEUE_MAX,
            max_batch=settings.CHAT_SEND_BATCH_MAX,
            lanes=settings.CHAT_SEND_CONNECTIONS,
            push_window=settings.CHAT_PUSH_WINDOW,
        )
        _finish_before_shutdown(queue)
    return queue


def _finish_before_shutdown(queue: SendQueue) -> None:
    """daphne stops on SIGTERM or SIGINT (a deploy, a restart): the queue
    finishes first; without it the pushes of the last tenth of a second were
    lost with the process."""
    loop = asyncio.get_running_loop()
    installed = daphne_reactor.runs(loop)
    if installed is not None:
        daphne_reactor.before_shutdown(installed, loop, queue.finish)
