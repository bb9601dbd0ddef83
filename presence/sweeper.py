"""A background loop in every chat server process: it records the heartbeats
its sockets noted, and expires silent devices.

Every process sweeps; the store lets exactly one of them take each overdue
device, so a chat server that dies is swept by the survivors.
"""

import asyncio
import logging

from django.conf import settings

from presence.services import record_noted_beats, sweep

logger = logging.getLogger(__name__)

_task: asyncio.Task | None = None


def ensure_running() -> None:
    """Start the loop on the running event loop, once per process."""
    global _task
    if _task is None or _task.done():
        _task = asyncio.get_running_loop().create_task(_run())


async def _run() -> None:
    # Short next to the timeout: beats noted by sockets wait for this loop.
    interval = min(1.0, settings.PRESENCE_TIMEOUT / 8)
    while True:
        await asyncio.sleep(interval)
        try:
            await record_noted_beats()
        except Exception:
            logger.exception("recording heartbeats failed")
        try:
            await sweep()
        except Exception:
            # Redis may be restarting; keep sweeping once it is back.
            logger.exception("presence sweep failed")
