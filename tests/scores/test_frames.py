"""scores/frames.py: the prebuilt board frame is a valid WebSocket text frame for every payload size.

The direct write to daphne's sockets is exercised end to end by tests/scores/test_broadcast_e2e.py (two real
daphne processes, the `websockets` client); under WebsocketCommunicator the consumer sends through ASGI.
"""

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from scores.frames import text_frame


def parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frame_round_trips_through_a_websocket_parser(size: int) -> None:
    text = "é" * (size // 4) + "x" * (size - 2 * (size // 4))  # `size` bytes of UTF-8, some of them multi-byte
    frame = parse(text_frame(text))
    assert frame.opcode == Opcode.TEXT
    assert frame.fin is True
    assert frame.data.decode() == text
    assert len(frame.data) == size
