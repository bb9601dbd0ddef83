"""daphne's Twisted reactor, for work that must run while daphne serves.

daphne, an installed app, installs its asyncio reactor in every Django
process, but only daphne's server (and runserver, which is daphne) runs it:
elsewhere (tests, Celery, management commands) there is a reactor that never
starts, and nothing here fires.
"""

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any


def reactor() -> Any | None:
    """The installed reactor, or None (the module is imported only where
    daphne, or something else, installed one)."""
    return sys.modules.get("twisted.internet.reactor")


def runs(loop: asyncio.AbstractEventLoop) -> Any | None:
    """The reactor if it is running `loop` now, else None."""
    installed = reactor()
    if getattr(installed, "running", False) and (
        getattr(installed, "_asyncioEventloop", None) is loop
    ):
        return installed
    return None


def before_shutdown(
    installed: Any, loop: asyncio.AbstractEventLoop, work: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Run `work()` on `loop` when daphne is told to stop (SIGTERM, SIGINT),
    before it closes its sockets and its loop: Twisted waits for the Deferred
    of a "before shutdown" trigger while the event loop still runs."""
    from twisted.internet.defer import Deferred

    installed.addSystemEventTrigger(
        "before", "shutdown", lambda: Deferred.fromFuture(loop.create_task(work()))
    )
