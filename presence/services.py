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
# (presence.sweeper) many per Redis round trip: one script call per beat was
# most of what 2,000 beating sockets cost (docs/benchmarks.md, "Session 8").
# Newest per device; a beat waits at most a sweep interval, well inside the
# PRESENCE_TIMEOUT / 3 margin sockets keep.
_noted: dict[tuple[int, str], Beat] = {}
# The recording under way, with its loop: a leaving device waits for it.
_recording: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None


def note_beat(*, user_id: int, device: str) -> None:
    """A device sent a heartbeat: record it with the next batch."""
    _noted[user_id, device] = Beat(user_id, device, now())


async def record_noted_beats() -> int:
    """Record the beats noted since the last call; announce users who came
    back online (their devices had expired, or Redis lost its data)."""
    global _recording
    if not _noted:
        return 0
    beats = list(_noted.values())
    _noted.clear()
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    _recording = (loop, done)
    try:
        versions = await get_store().beat_many(beats, settings.PRESENCE_TIMEOUT)
    except BaseException:
        # Kept for the next call, unless a newer beat of the device came in.
        for beat in beats:
            _noted.setdefault((beat.user_id, beat.device), beat)
        raise
    finally:
        _recording = None
        done.set_result(None)
    for beat, version in zip(beats, versions, strict=True):
        if version:
            await _announce(beat.user_id, online=True, at=beat.at, version=version)
    return len(beats)


async def device_left(*, user_id: int, device: str) -> None:
    """A device closed its socket cleanly: offline at once if it was the last."""
    # Its beat must not be recorded after it left, which would show it online
    # until the sweep: drop a noted one, let one being recorded land first.
    _noted.pop((user_id, device), None)
    if _recording is not None and _recording[0] is asyncio.get_running_loop():
        await asyncio.shield(_recording[1])
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
