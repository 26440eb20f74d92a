"""The fault drill's clients (bench/faults.py): players that start and complete actions and retry as a real client
would, WebSocket viewers that reconnect as the page does, and a /readyz watcher; every response is recorded."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import httpx
from websockets.asyncio.client import connect as ws_connect

CLIENT_TIMEOUT = 10.0  # a response slower than this is a hang


@dataclass
class Record:
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    slowest: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    missing_retry_after: int = 0
    not_json: int = 0
    acknowledged: dict[str, int] = field(default_factory=dict)  # action id -> points the client was told
    ok_at: list[float] = field(default_factory=list)  # monotonic times of acknowledged completions
    completed_on_retry: set[str] = field(default_factory=set)  # ids a retry found already completed (409)
    phase: str = "warm-up"

    def note(self, status: str, elapsed: float) -> None:
        self.statuses[self.phase][status] += 1
        self.slowest[self.phase] = max(self.slowest[self.phase], elapsed)


async def call(client: httpx.AsyncClient, record: Record, method: str, path: str, **kwargs) -> httpx.Response | None:
    started = time.monotonic()
    try:
        response = await client.request(method, path, **kwargs)
    except httpx.TimeoutException:
        record.note("timeout", time.monotonic() - started)
        return None
    except httpx.TransportError:
        record.note("connection error", time.monotonic() - started)
        return None
    record.note(str(response.status_code), time.monotonic() - started)
    if response.status_code >= 400:
        if not response.headers.get("content-type", "").startswith("application/json"):
            record.not_json += 1
        if response.status_code == 503 and not response.headers.get("Retry-After", "").isdigit():
            record.missing_retry_after += 1
    return response


def pause_for(response: httpx.Response | None) -> float:
    # Honour Retry-After, capped so the drill sees recovery promptly.
    if response is not None and response.headers.get("Retry-After", "").isdigit():
        return min(1.0, int(response.headers["Retry-After"]))
    return 0.2


async def player(url: str, token: str, record: Record, stop: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=CLIENT_TIMEOUT) as client:
        while not stop.is_set():
            started = await call(client, record, "POST", "/api/v1/users/me/actions", json={"actionType": "drill"})
            if started is None or started.status_code != 201:
                await asyncio.sleep(pause_for(started))
                continue
            action_id = started.json()["actionId"]
            for _ in range(60):  # retry the same action: the server pays it at most once
                done = await call(client, record, "PUT", f"/api/v1/users/me/actions/{action_id}",
                                  json={"status": "completed"})
                if done is not None and done.status_code == 200:
                    record.acknowledged[action_id] = done.json()["pointsAwarded"]
                    record.ok_at.append(time.monotonic())
                    break
                if done is not None and done.status_code < 500:
                    # 409 with status "completed": an earlier attempt committed it but its answer was lost (the
                    # database went away between the commit and the response). Paid once; the client can tell.
                    if done.status_code == 409 and done.json()["error"]["details"].get("status") == "completed":
                        record.completed_on_retry.add(action_id)
                    break
                await asyncio.sleep(pause_for(done))


@dataclass
class Viewer:
    last: dict | None = None
    reconnects: int = 0
    errors: Counter = field(default_factory=Counter)


async def viewer(ws_url: str, token: str, state: Viewer, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with ws_connect(f"{ws_url}/ws/scoreboard?token={token}", open_timeout=CLIENT_TIMEOUT) as socket_:
                async for text in socket_:
                    message = json.loads(text)
                    if message.get("type") == "top_scores_update":
                        state.last = message
                    if stop.is_set():
                        return
        except Exception as exc:  # noqa: BLE001 - any drop: reconnect, as the page does
            state.errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
        state.reconnects += 1
        await asyncio.sleep(0.5)


async def ready_watch(url: str, samples: list[tuple[float, int]], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT) as client:
        while not stop.is_set():
            try:
                status = (await client.get("/readyz")).status_code
            except httpx.HTTPError:
                status = 0
            samples.append((time.monotonic(), status))
            await asyncio.sleep(0.2)
