"""The end-to-end benchmark's load generator: a small raw-asyncio HTTP/1.1 keep-alive client, and `hammer`, which
keeps N such connections busy for a bounded time and reports requests/s, latency percentiles and statuses.

Raw asyncio rather than an HTTP library: on the 2 cores the server shares, the generator must cost as little
CPU per request as it can.
"""

from __future__ import annotations

import asyncio
import time


class Http:
    """One keep-alive connection; `request` returns (status, body). Reconnects when the server closes."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, token: str | None = None, body: bytes = b"") -> tuple[int, bytes]:
        for attempt in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            if token:
                head += f"Authorization: Bearer {token}\r\n"
            if body or method in ("POST", "PUT"):
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            self.writer.write(head.encode() + b"\r\n" + body)
            try:
                return await self._response()
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _response(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await self.reader.read()
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def hammer(port: int, connections: int, seconds: float, make_request, rate: float | None = None) -> dict:
    """Run `make_request(client, index)` on `connections` keep-alive connections for `seconds`; count and time.
    With `rate`, requests are paced to that many per second in all (at most; fewer if the server is slower), and
    each one's latency is timed from when it is sent."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    until = time.monotonic() + seconds
    schedule = Schedule(rate)

    async def loop(index: int) -> None:
        client = Http(port)
        try:
            while time.monotonic() < until:
                await schedule.wait_turn()
                began = time.perf_counter()
                status = await make_request(client, index)
                if status is None:
                    return
                latencies.append(time.perf_counter() - began)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            client.close()

    began = time.monotonic()
    await asyncio.gather(*(loop(index) for index in range(connections)))
    elapsed = time.monotonic() - began
    return {"requests": len(latencies), "seconds": round(elapsed, 2), "per_second": round(len(latencies) / elapsed, 1),
            "p50_ms": ms(pct(latencies, 0.50)), "p95_ms": ms(pct(latencies, 0.95)), "p99_ms": ms(pct(latencies, 0.99)),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}


class Schedule:
    """Send times `rate` per second apart, shared by every connection; no pacing without a rate."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1 / rate if rate else 0.0
        self.next_at = time.monotonic()

    async def wait_turn(self) -> None:
        if not self.interval:
            return
        turn, self.next_at = self.next_at, max(self.next_at, time.monotonic() - 1) + self.interval
        await asyncio.sleep(max(0.0, turn - time.monotonic()))


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)
