"""Autobahn's per-frame debug lines stop costing CPU when nobody reads them.

Autobahn logs every frame it reads and writes at debug level, and builds the
line's arguments before the logger decides to drop it: ``hltype`` inspects
the method and ``hlval`` styles each value with click (installed here for
Celery's command line), about 4 us per frame read or sent, three frames per
chat message (the send, its ack, the delivery): ~4% of the event loop's busy
time at 3,000 msg/s (docs/benchmarks.md, "Session 13").

The two modules that do this per frame get plain formatters instead, for a
few hundred nanoseconds: no colours, and a method is named by its class and
name without its module (the lines are for debugging only). Autobahn's other
modules (handshake, connection lost) keep theirs; they run once per socket.
"""

from typing import Any


def _plain_type(obj: Any) -> str:
    return f"<{getattr(obj, '__qualname__', type(obj).__qualname__)}>"


def _plain_value(value: Any, color: str = "", bold: bool = True) -> str:
    return f"{value}"


def install() -> None:
    from autobahn.twisted import websocket as twisted_websocket
    from autobahn.websocket import protocol

    for module in (protocol, twisted_websocket):
        module.hltype = _plain_type
        module.hlval = _plain_value
