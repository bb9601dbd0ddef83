"""Presence: devices beat, users change state, contacts hear about changes.

A user is online while any device beats. Only changes are announced (the
store decides atomically which caller saw the change), to the user's
contacts: people sharing a direct conversation, and members of groups small
enough to fan out to. Members of big groups ask on demand instead.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Count, Q

from accounts.models import User
from chatproject.realtime import send_many
from messaging.models import Conversation, Membership
from presence.store import Beat, Status, get_store, now

logger = logging.getLogger(__name__)


def contacts_of_many(user_ids: list[int]) -> dict[int, list[int]]:
    """Who is told when each of these users comes and goes, in one statement."""
    theirs = Membership.objects.filter(user_id__in=user_ids).values("conversation_id")
    # Filter by subquery, not by joining memberships: a join would make the
    # Count below count only these users' rows.
    small = (
        Conversation.objects.filter(pk__in=theirs)
        .annotate(size=Count("memberships"))
        .filter(Q(kind=Conversation.Kind.DIRECT) | Q(size__lte=settings.PRESENCE_FANOUT_MAX_GROUP))
        .values("pk")
    )
    members: dict[int, set[int]] = defaultdict(set)
    rows = Membership.objects.filter(conversation_id__in=small).values_list(
        "conversation_id", "user_id"
    )
    for conversation_id, member_id in rows:
        members[conversation_id].add(member_id)
    wanted = set(user_ids)
    contacts: dict[int, set[int]] = {user_id: set() for user_id in user_ids}
    for people in members.values():
        for user_id in people & wanted:
            contacts[user_id] |= people
    return {user_id: sorted(people - {user_id}) for user_id, people in contacts.items()}


def _persist_last_active(last_active: dict[int, float]) -> None:
    # Redis keeps the live value; the database keeps "last seen" across restarts.
    # One UPDATE (CASE per user) however many users went offline together.
    users = [
        User(pk=pk, last_active_at=datetime.fromtimestamp(at, UTC))
        for pk, at in last_active.items()
    ]
    User.objects.bulk_update(users, ["last_active_at"])


def iso_time(at: float | datetime | None) -> str | None:
    if at is None:
        return None
    if not isinstance(at, datetime):
        at = datetime.fromtimestamp(at, UTC)
    return at.isoformat().replace("+00:00", "Z")


def status_frame(status: Status, version: int) -> dict:
    return {
        "type": "presence",
        "user_id": status.user_id,
        "status": "online" if status.online else "offline",
        "last_active_at": iso_time(status.last_active_at),
        "version": version,
    }


@dataclass(frozen=True)
class Change:
    """A user's state changed: what their contacts are told."""

    user_id: int
    online: bool
    at: float
    version: int


def _persist_and_find_contacts(changes: list[Change]) -> dict[int, list[int]]:
    """Keep "last seen" of users who went offline; who to tell of each change.
    One trip to the database thread for them all."""
    went_offline = {change.user_id: change.at for change in changes if not change.online}
    if went_offline:
        _persist_last_active(went_offline)
    return contacts_of_many([change.user_id for change in changes])


async def _announce_many(changes: list[Change]) -> None:
    contacts = await database_sync_to_async(_persist_and_find_contacts)(changes)
    outgoing = []
    for change in changes:
        status = Status(change.user_id, change.online, change.at)
        event = {"type": "presence.event", "frame": status_frame(status, change.version)}
        outgoing += [(contact, event) for contact in contacts[change.user_id]]
    await send_many(outgoing)


async def _announce(user_id: int, *, online: bool, at: float, version: int) -> None:
    await _announce_many([Change(user_id, online, at, version)])


async def device_beat(*, user_id: int, device: str) -> None:
    """A device connected or sent a heartbeat."""
    at = now()
    if version := await get_store().beat(user_id, device, at, settings.PRESENCE_TIMEOUT):
        await _announce(user_id, online=True, at=at, version=version)


# Heartbeats of this process's sockets, recorded by its presence loop
# (presence.sweeper) all in one Redis round trip: one script call per beat was
# most of what 2,000 beating sockets cost (docs/benchmarks.md, "Session 8").
# Newest per device. A beat waits at most a loop interval (an eighth of
# PRESENCE_TIMEOUT at most) plus a sweep, inside the third of the timeout
# between a socket's recorded beats.
_noted: dict[tuple[int, str], Beat] = {}
# The recording under way, with its loop: a leaving device waits for it.
_recording: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None


def note_beat(*, user_id: int, device: str) -> None:
    """A device sent a heartbeat: record it with the next batch."""
    _noted[user_id, device] = Beat(user_id, device, now())


async def record_noted_beats() -> int:
    """Record the beats noted since the last call and announce users who came
    back online (their devices had expired, or Redis lost its data). Beats
    that failed are kept for the next call. Returns how many were recorded."""
    global _recording
    if not _noted:
        return 0
    beats = list(_noted.values())
    _noted.clear()
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    _recording = (loop, done)
    try:
        answers = await get_store().beat_many(beats, settings.PRESENCE_TIMEOUT)
    except Exception as error:  # Redis away: the whole batch failed
        answers = [error] * len(beats)
    finally:
        _recording = None
        done.set_result(None)
    failed = [(b, a) for b, a in zip(beats, answers, strict=True) if isinstance(a, Exception)]
    if failed:
        logger.warning("%d of %d beats not recorded: %r", len(failed), len(beats), failed[0][1])
        # Unless a newer beat of the device came in meanwhile, or the beat is
        # too old to keep its device online anyway.
        fresh_after = now() - settings.PRESENCE_TIMEOUT
        for beat, _ in failed:
            if beat.at > fresh_after:
                _noted.setdefault((beat.user_id, beat.device), beat)
    for beat, answer in zip(beats, answers, strict=True):
        if not isinstance(answer, Exception) and answer:
            try:
                await _announce(beat.user_id, online=True, at=beat.at, version=answer)
            except Exception:
                # One failed announcement must not cost the others theirs.
                logger.exception("announcing user %s online failed", beat.user_id)
    return len(beats) - len(failed)


# Sockets that closed, going offline together. When thousands close at once
# (a network blip, a restarting proxy), one at a time each took a Redis script
# and two statements on the one database thread: 2,000 took 11-12 s, daphne
# killed most closers past its 10 s, and 149 of 200 sockets opened right
# after failed (docs/benchmarks.md, "Session 9"). A close joins the batch
# that forms while the one before it is in Redis (a lone close is a batch of
# one and waits for nothing). Its contacts are told by a task of the batch's
# own, so a slow database trip does not hold later closes out of Redis.
LEAVE_BATCH_MAX = 500
# user id, device, when it closed, settled once its contacts were told
_Leave = tuple[int, str, float, "asyncio.Future[None]"]


@dataclass
class _Closes:
    """One event loop's closes: waiting for Redis, and in Redis now."""

    waiting: list[_Leave] = field(default_factory=list)
    in_store: list[_Leave] = field(default_factory=list)
    task: "asyncio.Task[None] | None" = None


_closes: dict[asyncio.AbstractEventLoop, _Closes] = {}
_tasks: set["asyncio.Task[None]"] = set()  # the loop holds tasks weakly


async def device_left(*, user_id: int, device: str) -> None:
    """A device closed its socket cleanly: offline at once if it was the last.
    Returns once its contacts were told; raises what the store raised."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    closes = _closes.get(loop)
    if closes is None:
        closes = _closes[loop] = _Closes()
        closes.task = _keep(_record_closes(closes))
        closes.task.add_done_callback(lambda _: _recorder_ended(loop, closes))
    closes.waiting.append((user_id, device, now(), done))
    await done


def _keep(work: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
    task = asyncio.get_running_loop().create_task(work)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


async def _record_closes(closes: _Closes) -> None:
    while closes.waiting:
        closes.in_store = closes.waiting[:LEAVE_BATCH_MAX]
        del closes.waiting[:LEAVE_BATCH_MAX]
        try:
            answers = await _leave_in_store(closes.in_store)
        except Exception:  # a bug: fail this batch, go on with the next
            logger.exception("recording %d closes failed", len(closes.in_store))
            _fail(closes.in_store)
            closes.in_store = []
            continue
        batch, closes.in_store = closes.in_store, []
        telling = _keep(_tell(batch, answers))
        telling.add_done_callback(lambda _, batch=batch: _fail(batch))


def _recorder_ended(loop: asyncio.AbstractEventLoop, closes: _Closes) -> None:
    # Nothing awaited since `waiting` was last found empty, unless the task
    # was cancelled: then whatever it held fails rather than waits forever.
    if _closes.get(loop) is closes:
        del _closes[loop]
    _fail(closes.in_store + closes.waiting)


def _fail(leaves: list[_Leave]) -> None:
    """Settle closes that nothing will settle now (a cancelled task, a bug)."""
    error = RuntimeError("going offline was not recorded")
    for *_, done in leaves:
        if not done.done():
            done.set_exception(error)


async def _leave_in_store(batch: list[_Leave]) -> list[int | Exception]:
    devices = [(user_id, device) for user_id, device, _, _ in batch]
    # Their beats must not be recorded after they left, which would show them
    # online until the sweep: drop noted ones, let one being recorded land
    # first (and drop them again if that recording failed and kept them).
    for key in devices:
        _noted.pop(key, None)
    if _recording is not None and _recording[0] is asyncio.get_running_loop():
        await asyncio.shield(_recording[1])
        for key in devices:
            _noted.pop(key, None)
    try:
        return await get_store().leave_many(devices, now())
    except Exception as error:  # Redis away: every leave failed
        return [error] * len(batch)


async def _tell(batch: list[_Leave], answers: list[int | Exception]) -> None:
    # Only a user's last live device answers with a version: one change each.
    changes = [
        Change(user_id, False, closed_at, answer)
        for (user_id, _, closed_at, _), answer in zip(batch, answers, strict=True)
        if not isinstance(answer, Exception) and answer
    ]
    if changes:
        try:
            await _announce_many(changes)
        except Exception:
            # They are offline; contacts whose frame was lost see it on their
            # next presence query.
            logger.exception("announcing %d users offline failed", len(changes))
    for (*_, done), answer in zip(batch, answers, strict=True):
        if done.done():  # its caller was cancelled
            continue
        if isinstance(answer, Exception):
            done.set_exception(answer)
        else:
            done.set_result(None)


async def sweep(*, limit: int = 500) -> int:
    """Take devices whose beats stopped (dead network, killed chat server)."""
    at = now()
    store = get_store()
    gone = 0
    for user_id, device in await store.expired(at, limit):
        if version := await store.expire(user_id, device, at):
            gone += 1
            # The sync client would block the event loop; read in a thread.
            status = (await asyncio.to_thread(store.statuses, [user_id], at))[0]
            last = status.last_active_at or at
            await _announce(user_id, online=False, at=last, version=version)
    return gone


def is_online(user_id: int) -> bool:
    """One cheap call: has this user any device beating now? (Push uses it.)"""
    return get_store().statuses([user_id], now())[0].online
