"""Presence: devices beat, users change state, contacts hear about changes.

A user is online while any device beats. Only changes are announced (the
store decides atomically which caller saw the change), to the user's
contacts: people sharing a direct conversation, and members of groups small
enough to fan out to. Members of big groups ask on demand instead.
"""

import asyncio
import logging
from datetime import UTC, datetime

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Count, Q

from accounts.models import User
from chatproject.realtime import send_many
from messaging.models import Conversation, Membership
from presence.store import Beat, Status, get_store, now

logger = logging.getLogger(__name__)


def contacts_of(user_id: int) -> list[int]:
    """Who is told when this user comes and goes."""
    mine = Membership.objects.filter(user_id=user_id).values("conversation_id")
    # Filter by subquery, not by joining memberships: a join would make the
    # Count below count only this user's row.
    small = (
        Conversation.objects.filter(pk__in=mine)
        .annotate(size=Count("memberships"))
        .filter(Q(kind=Conversation.Kind.DIRECT) | Q(size__lte=settings.PRESENCE_FANOUT_MAX_GROUP))
        .values("pk")
    )
    return list(
        Membership.objects.filter(conversation_id__in=small)
        .exclude(user_id=user_id)
        .values_list("user_id", flat=True)
        .distinct()
    )


def _persist_last_active(user_id: int, at: float) -> None:
    # Redis keeps the live value; the database keeps "last seen" across restarts.
    User.objects.filter(pk=user_id).update(last_active_at=datetime.fromtimestamp(at, UTC))


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


async def _announce(user_id: int, *, online: bool, at: float, version: int) -> None:
    if not online:
        await database_sync_to_async(_persist_last_active)(user_id, at)
    contacts = await database_sync_to_async(contacts_of)(user_id)
    frame = status_frame(Status(user_id, online, at), version)
    await send_many([(contact, {"type": "presence.event", "frame": frame}) for contact in contacts])


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


async def device_left(*, user_id: int, device: str) -> None:
    """A device closed its socket cleanly: offline at once if it was the last."""
    # Its beat must not be recorded after it left, which would show it online
    # until the sweep: drop a noted one, let one being recorded land first
    # (and drop it again if that recording failed and kept it).
    _noted.pop((user_id, device), None)
    if _recording is not None and _recording[0] is asyncio.get_running_loop():
        await asyncio.shield(_recording[1])
        _noted.pop((user_id, device), None)
    at = now()
    if version := await get_store().leave(user_id, device, at):
        await _announce(user_id, online=False, at=at, version=version)


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
