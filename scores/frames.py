"""One board frame, built once, written to thousands of WebSockets with one system call each (under daphne).

Sent through ASGI, every viewer's copy of a board walks daphne's handle_reply, autobahn's sendMessage and
sendFrame (framing the same text again for each socket) and Twisted's write buffer (register the socket for
writing, wait a loop turn, send, unregister): about 80 us of CPU per viewer on the benchmark machine, which made a
board reach 5,000 viewers in half a second. Yet the bytes are identical for every viewer: a server never masks its
frames and daphne accepts no compression extension. So the relay frames a board once (text_frame) and, for
sockets that daphne serves, writes those bytes straight to the socket when nothing is queued ahead of them.

DirectFrames, the outermost ASGI middleware of the WebSocket stack, finds daphne's protocol object behind the
`send` callable and puts a writer for it in the scope. Anything else (another ASGI server, the test communicator,
TLS terminated in daphne, a socket with a write backlog) takes the ordinary path: Twisted's buffered write, or the
consumer's ASGI send when there is no writer at all.
"""

import functools
from collections.abc import Callable
from typing import Any

EXTENSION = "scoreboard.frame_writer"

FrameWriter = Callable[[bytes], None]


def text_frame(text: str) -> bytes:
    """A complete, unmasked, unfragmented WebSocket text frame (RFC 6455, section 5.2) carrying `text`."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


def writer_for(scope: dict) -> FrameWriter | None:
    """The frame writer DirectFrames left for this connection, or None (write through ASGI instead)."""
    return (scope.get("extensions") or {}).get(EXTENSION)


class DirectFrames:
    """ASGI middleware: give WebSocket connections served by daphne a direct frame writer (see module doc)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        protocol = _daphne_websocket(send)
        if protocol is not None:
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), EXTENSION: _writer(protocol)}}
        return await self.app(scope, receive, send)


def _daphne_websocket(send: Any) -> Any:
    # daphne passes each application `functools.partial(server.handle_reply, protocol)` (daphne/server.py).
    if not isinstance(send, functools.partial) or getattr(send.func, "__name__", "") != "handle_reply" or not send.args:
        return None
    protocol = send.args[0]
    if type(protocol).__module__ != "daphne.ws_protocol" or getattr(protocol, "_perMessageCompress", None) is not None:
        return None
    return protocol


def _writer(protocol: Any) -> FrameWriter:
    def write(frame: bytes) -> None:
        if protocol.state != protocol.STATE_OPEN:
            return  # closing or closed: daphne would drop it too
        transport = protocol.transport
        sock = getattr(transport, "socket", None)  # None under TLS: Twisted must encrypt, so it writes
        if sock is not None and _nothing_queued(transport):
            try:
                sent = sock.send(frame)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                return  # the connection is gone; Twisted notices on its next read and closes it
            if sent == len(frame):
                return
            frame = frame[sent:]
        transport.write(frame)  # behind what is queued, in order; Twisted sends it when the socket can take it

    return write


def _nothing_queued(transport: Any) -> bool:
    return (
        transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport._tempDataBuffer
        and transport.offset == len(transport.dataBuffer)
    )
