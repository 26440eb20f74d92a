"""The benchmarks' WebSocket viewer: a minimal anonymous /ws/scoreboard client, thousands per process.

Receipt times come from the kernel (SO_TIMESTAMPNS: when the segment reached this viewer's socket), not from the
moment this single Python process got round to reading it. Thousands of viewers share one load-generator process
on the same two cores as the server; reading them one after the other would add the generator's own queueing to
every figure, which no real viewer (one socket per browser) pays. If several boards wait in one socket, recvmsg
reports the arrival of the last one for all of them, so the figure can only err on the slow side.

ViewerProcess runs the viewers in a child process at a lower priority, for a load generator that also measures
request latency itself (bench/e2e.py): it then neither shares its event loop with thousands of sockets nor takes
the servers' cores in the middle of a broadcast.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import json
import multiprocessing
import os
import socket
import struct
import time

# Linux's SO_TIMESTAMPNS (also the control-message type, SCM_TIMESTAMPNS); the socket module does not name it.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)


class Viewer:
    def __init__(self, sock: socket.socket, host: str, port: int) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.ready: asyncio.Future = self.loop.create_future()
        self.buffer = bytearray()
        self.upgraded = False
        self.received: list[tuple[int, float]] = []  # (board version, receipt time)
        self.last_board = b""
        self.closed = False
        self.request = (f"GET /ws/scoreboard HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n").encode()

    @classmethod
    async def open(cls, host: str, port: int) -> "Viewer":
        """Connect and send the handshake; `ready` resolves with the first board's version."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        viewer = cls(sock, host, port)
        sock.send(viewer.request)
        viewer.loop.add_reader(sock.fileno(), viewer._readable)
        return viewer

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def _readable(self) -> None:
        try:
            data, ancillary, _, _ = self.sock.recvmsg(65536, _ANCILLARY_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        self.buffer += data
        if not self.upgraded and not self._upgrade():
            return
        self._frames(_kernel_time(ancillary))

    def _lost(self) -> None:
        self.close()
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during handshake"))

    def _upgrade(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        if not self.buffer.startswith(b"HTTP/1.1 101"):
            self.ready.set_exception(ConnectionError(bytes(self.buffer[:80]).decode(errors="replace")))
            self.close()
            return False
        del self.buffer[: end + 4]
        self.upgraded = True
        return True

    def _frames(self, now: float) -> None:
        while len(self.buffer) >= 2:
            opcode, length, offset = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if length == 126:
                length, offset = int.from_bytes(self.buffer[2:4], "big"), 4
            elif length == 127:
                length, offset = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < offset + length:
                return
            payload = bytes(self.buffer[offset: offset + length])
            del self.buffer[: offset + length]
            if opcode == 1:
                self._message(payload, now)
            elif opcode == 9:
                self._send(0xA, payload)  # pong

    def _message(self, payload: bytes, now: float) -> None:
        if not payload.startswith(b'{"type":"top_scores_update"'):
            return
        self.last_board = payload
        # "version" is not the last key of a board message ("period" follows it): stop at "," or "}".
        at = payload.rfind(b'"version":') + 10
        end = at
        while payload[end:end + 1].isdigit():
            end += 1
        version = int(payload[at:end])
        self.received.append((version, now))
        if not self.ready.done():
            self.ready.set_result(version)

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.sock.send(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


def _kernel_time(ancillary: list) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds + nanoseconds / 1e9
    return time.time()


async def connect_viewers(ports: list[int], count: int, viewer_class: type[Viewer] = Viewer) -> list[Viewer]:
    """`count` viewers spread over `ports`, connected 250 at a time; each has received its first board."""
    viewers: list[Viewer] = []
    for start in range(0, count, 250):
        batch = [await viewer_class.open("127.0.0.1", ports[index % len(ports)])
                 for index in range(start, min(start + 250, count))]
        await asyncio.wait_for(asyncio.gather(*(viewer.ready for viewer in batch)), 60)
        viewers += batch
    return viewers


def delivery_latencies(viewers: list, completions: list[tuple[int, float]]) -> tuple[list[float], int]:
    """For every viewer and completion (version, commit time): seconds until the viewer received the first board
    whose version includes it; and how many (viewer, completion) pairs never got one."""
    latencies: list[float] = []
    undelivered = 0
    for viewer in viewers:
        versions = [version for version, _ in viewer.received]
        for version, committed in completions:
            index = bisect.bisect_left(versions, version)
            if index == len(versions):
                undelivered += 1
            else:
                latencies.append(viewer.received[index][1] - committed)
    return latencies, undelivered


def board_spreads(viewers: list) -> list[float]:
    """Per board version, seconds from the first viewer's receipt to the last one's (fan-out time), sorted."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for viewer in viewers:
        for version, at in viewer.received:
            first[version] = min(first.get(version, at), at)
            last[version] = max(last.get(version, at), at)
    return sorted(last[version] - first[version] for version in first)


def board_rows(board: bytes) -> list[tuple[str, int]] | None:
    """(user id, score) of each row of a board message, or None if there was no board."""
    return [(row["userId"], row["score"]) for row in json.loads(board)["payload"]] if board else None


class Received:
    """What one viewer of a ViewerProcess got: its boards' (version, receipt time), the last board, if it closed."""

    def __init__(self, received: list[tuple[int, float]], last_board: bytes, closed: bool) -> None:
        self.received, self.last_board, self.closed = received, last_board, closed


class ViewerProcess:
    """`count` viewers spread over `ports`, in a child process at niceness `nice`, driven over a pipe."""

    def __init__(self, ports: list[int], count: int, nice: int = 10) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, ports, count, nice), daemon=True)

    async def start(self) -> int:
        """Connect the viewers (each has its first board); the number connected."""
        self.process.start()
        return await self._answer(180)

    async def clear(self) -> None:
        await self._ask("clear")

    async def behind(self, final_rows: list[tuple[str, int]]) -> int:
        """How many viewers' last board differs from `final_rows`."""
        return await self._ask("behind", final_rows)

    async def report(self) -> list[Received]:
        return [Received(*row) for row in await self._ask("report")]

    async def stop(self) -> None:
        if self.process.is_alive():
            try:
                await self._ask("close")
            finally:
                self.process.join(10)
                if self.process.is_alive():
                    self.process.kill()

    async def _ask(self, command: str, argument: object = None) -> object:
        self.pipe.send((command, argument))
        return await self._answer(60)

    async def _answer(self, timeout: float) -> object:
        if not await asyncio.to_thread(self.pipe.poll, timeout):
            raise TimeoutError("the viewer process did not answer")
        answer = self.pipe.recv()
        if isinstance(answer, BaseException):
            raise answer
        return answer


def _serve(pipe: object, ports: list[int], count: int, nice: int) -> None:
    os.nice(nice)
    asyncio.run(_serve_commands(pipe, ports, count))


async def _serve_commands(pipe: object, ports: list[int], count: int) -> None:
    try:
        viewers = await connect_viewers(ports, count)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        pipe.send(exc)
        return
    pipe.send(len(viewers))
    while True:
        command, argument = await asyncio.to_thread(pipe.recv)
        if command == "clear":
            for viewer in viewers:
                viewer.received.clear()
            pipe.send(None)
        elif command == "behind":
            pipe.send(sum(1 for viewer in viewers if board_rows(viewer.last_board) != argument))
        elif command == "report":
            pipe.send([(viewer.received, viewer.last_board, viewer.closed) for viewer in viewers])
        elif command == "close":
            for viewer in viewers:
                viewer.close()
            pipe.send(None)
            return
