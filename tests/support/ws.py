"""A small synchronous WebSocket client for tests, over a real socket."""

import json
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


class Socket:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    def send(self, frame: dict[str, Any]) -> None:
        self.conn.send(json.dumps(frame))

    def send_raw(self, data: str | bytes) -> None:
        self.conn.send(data)

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        return json.loads(self.conn.recv(timeout=timeout))

    def expect(self, frame_type: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The next frame of this type (and matching fields); others are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {frame_type} frame matching {match} within {timeout} s")
            frame = self.recv(timeout=remaining)
            if frame.get("type") == frame_type and all(
                frame.get(key) == value for key, value in match.items()
            ):
                return frame

    def frames_for(self, seconds: float) -> list[dict[str, Any]]:
        """Everything that arrives within `seconds` (to assert that nothing does)."""
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                frames.append(self.recv(timeout=remaining))
            except TimeoutError:
                break
        return frames

    def closed_with(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close; the close code."""
        try:
            while True:
                self.conn.recv(timeout=timeout)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Socket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_socket(
    ws_url: str,
    *,
    token: str | None = None,
    origin: str | None = None,
    cookie: str | None = None,
    subprotocols: list[str] | None = None,
) -> Socket:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if cookie is not None:
        headers["Cookie"] = cookie
    conn = connect(
        ws_url,
        additional_headers=headers,
        origin=origin,
        subprotocols=subprotocols,
        open_timeout=10,
        max_size=2**21,
        legacy=True,
    )
    return Socket(conn)
