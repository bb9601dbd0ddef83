"""Frames leave daphne's sockets on the write, not one loop turn later.

Twisted buffers every ``transport.write`` and registers the socket with the
event loop for writability (``epoll_ctl``). On the next turn the loop reports
it writable, Twisted's logging wrapper calls ``doWrite``, which sends, and,
the buffer empty, unregisters it again (``epoll_ctl``). A chat server sends
mostly one small frame to a socket that had nothing queued, so it paid that
round for nearly every frame: ~11% of the server's busy samples with 1,000
pairs (docs/benchmarks.md, "Session 8").

Here a write to a socket with nothing queued is sent at once, as asyncio's own
transports do; whatever the kernel does not take, and every write behind it,
goes through Twisted's buffer as before, so order, backpressure
(``registerProducer``) and the handling of a lost connection are Twisted's.
"""

from twisted.internet import tcp


class WriteThroughServer(tcp.Server):
    def write(self, data: bytes) -> None:
        if (
            data
            and isinstance(data, bytes)
            # Nothing of earlier writes waits in either of Twisted's buffers:
            # this write may not overtake them.
            and not self._tempDataLen
            and self.offset == len(self.dataBuffer)
            # Closing, half-closed or aborted: Twisted decides what still goes.
            and self.connected
            and not self.disconnecting
            and not self._writeDisconnected
            and not self._aborting
            # After startTLS the bytes are plaintext for the TLS layer.
            and not self.TLS
            # A pull producer is asked for more only when doWrite empties the
            # buffer, which a write sent here never fills.
            and (self.producer is None or self.streamingProducer)
        ):
            try:
                sent = self.socket.send(data)
            except OSError:
                # Would block, or the peer is gone: the buffered path finds
                # out again in doWrite and closes the connection Twisted's way.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        super().write(data)


def install() -> None:
    """Make every TCP port Twisted opens from now on accept this transport."""
    tcp.Port.transport = WriteThroughServer
