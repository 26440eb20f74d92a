"""Two real daphne processes sharing the real PostgreSQL and Redis, driven by real clients.

A completion goes through server A over HTTP; a WebSocket client (the `websockets` library) and an SSE client
(httpx streaming) are connected to server B.
"""

import asyncio
import json
import time

import httpx
import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from rest_framework_simplejwt.tokens import AccessToken
from websockets.asyncio.client import connect as ws_connect

from scores import broadcast, leaderboard, services
from scores.models import ActionType
from tests.live_servers import Daphne, daphne_pair, live_env

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
]


COALESCE_MS = 250


@pytest.fixture
def servers(django_db_setup, django_db_blocker):
    # Wider than the 100 ms default so the burst below spans few windows even on a slow box.
    with daphne_pair(live_env(LIVE_COALESCE_MS=str(COALESCE_MS), DEBUG="true")) as pair:
        yield pair


@pytest.fixture(autouse=True)
def fresh_broadcast_state():
    broadcast.reset()
    yield
    broadcast.reset()


@pytest.fixture
def big_type(db) -> ActionType:
    return ActionType.objects.create(code="big", name="Big", points=100, min_duration_seconds=0, max_duration_seconds=3600)


def token(user) -> str:
    return str(AccessToken.for_user(user))


async def complete_over_http(server: Daphne, user, code: str = "quick") -> None:
    headers = {"Authorization": f"Bearer {token(user)}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as client:
        started = await client.post("/api/v1/users/me/actions", json={"actionType": code})
        assert started.status_code == 201, started.text
        done = await client.put(f"/api/v1/users/me/actions/{started.json()['actionId']}", json={"status": "completed"})
        assert done.status_code == 200, done.text


class WsViewer:
    def __init__(self) -> None:
        self.messages: list[tuple[float, dict]] = []

    async def open(self, server: Daphne, user, query: str = "") -> dict:
        self.socket = await ws_connect(f"{server.ws_url}/ws/scoreboard?token={token(user)}{query}")
        snapshot = json.loads(await asyncio.wait_for(self.socket.recv(), 5))
        self.task = asyncio.create_task(self._collect())
        return snapshot

    async def _collect(self) -> None:
        async for text in self.socket:
            message = json.loads(text)
            if message["type"] == "top_scores_update":
                self.messages.append((time.monotonic(), message))

    async def close(self) -> None:
        await self.socket.close()
        await asyncio.wait_for(self.task, 5)


class SseViewer:
    def __init__(self) -> None:
        self.events: list[tuple[float, dict]] = []
        self.snapshot: asyncio.Future = asyncio.get_running_loop().create_future()

    async def open(self, server: Daphne, user, query: str = "") -> dict:
        self.task = asyncio.create_task(self._collect(server, user, query))
        return await asyncio.wait_for(self.snapshot, 5)

    async def _collect(self, server: Daphne, user, query: str) -> None:
        headers = {"Authorization": f"Bearer {token(user)}"}
        async with httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(10, read=None)) as client:
            async with client.stream("GET", f"/api/v1/leaderboard/stream?{query}", headers=headers) as response:
                assert response.headers["content-type"] == "text/event-stream"
                fields: dict = {}
                async for line in response.aiter_lines():
                    if line:
                        name, _, value = line.partition(": ")
                        fields[name] = value
                        continue
                    if fields.get("event") == "leaderboard_update":
                        event = {"id": int(fields["id"]), **json.loads(fields["data"])}
                        if self.snapshot.done():
                            self.events.append((time.monotonic(), event))
                        else:
                            self.snapshot.set_result(event)
                    fields = {}

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest_asyncio.fixture
async def viewers_on_b(servers, bob):
    ws, sse = WsViewer(), SseViewer()
    await ws.open(servers[1], bob)
    await sse.open(servers[1], bob)
    yield ws, sse
    await ws.close()
    await sse.close()


def board_rows(payload: list) -> list[tuple]:
    return [(entry["rank"], entry["username"], entry["score"]) for entry in payload]


async def test_completion_through_a_reaches_ws_and_sse_on_b_within_a_second_even_after_idling(
    servers, viewers_on_b, alice, bob, quick_type
):
    ws, sse = viewers_on_b
    weekly_ws, weekly_sse = WsViewer(), SseViewer()
    assert (await weekly_ws.open(servers[1], bob, "&period=weekly"))["period"] == "weekly"
    assert (await weekly_sse.open(servers[1], bob, "period=weekly"))["period"] == "weekly"
    await asyncio.sleep(6)  # every socket idle past redis-py 8's default 5 s timeout

    started = time.monotonic()
    await complete_over_http(servers[0], alice)
    for _ in range(40):
        if ws.messages and sse.events and weekly_ws.messages and weekly_sse.events:
            break
        await asyncio.sleep(0.05)

    (ws_at, message), = ws.messages
    (sse_at, event), = sse.events
    assert ws_at - started < 1 and sse_at - started < 1
    assert board_rows(message["payload"]) == [(1, "alice", 10)]
    assert message["payload"][0]["userId"] == str(alice.pk)
    assert event["data"] == message["payload"] and event["id"] == event["version"] == message["version"]
    # The weekly subscribers on B got this week's board (the same here: everything was scored this week).
    (weekly_at, weekly), = weekly_ws.messages
    (_, weekly_event), = weekly_sse.events
    assert weekly_at - started < 1 and weekly["period"] == "weekly" and weekly_event["period"] == "weekly"
    assert weekly["payload"] == message["payload"] == weekly_event["data"]
    await weekly_ws.close()
    await weekly_sse.close()


async def test_change_outside_the_top_10_reaches_no_one(servers, make_user, big_type, quick_type, bob, alice):
    for index in range(10):
        user = await database_sync_to_async(make_user)(f"top{index}")
        action = await database_sync_to_async(services.start_action)(user=user, action_type_code="big")
        await database_sync_to_async(services.complete_action)(user=user, action_id=action.pk)
    await asyncio.sleep(0.3)
    ws, sse, weekly_ws = WsViewer(), SseViewer(), WsViewer()
    await ws.open(servers[1], bob)
    await sse.open(servers[1], bob)
    await weekly_ws.open(servers[1], bob, "&period=weekly")

    await complete_over_http(servers[0], alice)  # 10 points against ten players with 100: 11th, also this week
    await asyncio.sleep(1)

    assert ws.messages == [] and sse.events == [] and weekly_ws.messages == []
    await ws.close()
    await sse.close()
    await weekly_ws.close()


async def test_burst_of_50_completions_arrives_as_far_fewer_messages_ending_on_the_final_board(
    servers, viewers_on_b, alice, bob, make_user, quick_type
):
    ws, sse = viewers_on_b
    carol = await database_sync_to_async(make_user)("carol")

    async def play(server: Daphne, user, times: int) -> None:
        for _ in range(times):
            await complete_over_http(server, user)

    # Through both processes at once: the coalescing window is shared, so this is not twice the messages. Eight
    # players at a time (each user stays within its open-action limit of 3) keep the burst short.
    began = time.monotonic()
    await asyncio.gather(
        *(play(servers[index % 2], alice, 10) for index in range(2)),
        *(play(servers[index % 2], bob, 5) for index in range(3)),
        *(play(servers[(index + 1) % 2], carol, 5) for index in range(3)),
    )
    burst_seconds = time.monotonic() - began
    final = (await database_sync_to_async(leaderboard.top)(10)).as_json()
    for _ in range(40):
        if ws.messages and ws.messages[-1][1]["version"] == final["version"] and sse.events \
                and sse.events[-1][1]["version"] == final["version"]:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # nothing more may follow

    assert {entry["username"]: entry["score"] for entry in final["data"]} == {"alice": 200, "bob": 150, "carol": 150}
    for received in ([message for _, message in ws.messages], [event for _, event in sse.events]):
        # At most one message per window (plus the windows' edges), and far fewer than 50 either way.
        assert 1 <= len(received) <= min(25, burst_seconds / (COALESCE_MS / 1000) + 2), (len(received), burst_seconds)
        versions = [item["version"] for item in received]
        assert versions == sorted(set(versions))
    assert ws.messages[-1][1]["payload"] == final["data"] and ws.messages[-1][1]["version"] == final["version"]
    assert sse.events[-1][1]["data"] == final["data"] and sse.events[-1][1]["version"] == final["version"]


async def test_idle_socket_gets_a_heartbeat_ping_from_the_server(django_db_setup):
    server = Daphne(live_env(LIVE_ALLOW_ANONYMOUS="true"), extra_args=("--ping-interval", "1"))  # default: every 20 s
    try:
        server.wait_ready()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /ws/scoreboard HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 101")
        opcodes = []
        while 0x9 not in opcodes:  # a raw client, so the ping is seen rather than answered behind our back
            head = await asyncio.wait_for(reader.readexactly(2), 5)
            length = head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(await reader.readexactly(2), "big")
            await reader.readexactly(length)
            opcodes.append(head[0] & 0x0F)
        assert opcodes[0] == 0x1  # the snapshot, then the ping
        writer.close()
    finally:
        server.stop()
