"""The SSE stream through the real ASGI application, one ASGI message at a time."""

import asyncio
import json
from urllib.parse import urlsplit

import pytest
from channels.db import database_sync_to_async
from channels.testing import ApplicationCommunicator
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from scoreboard_project.asgi import application
from scores import broadcast, relay, services
from tests.tcp_proxy import TcpProxy

pytestmark = [
    pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("quick_broadcasts"),
]

PATH = "/api/v1/leaderboard/stream"


def complete(user) -> None:
    action = services.start_action(user=user, action_type_code="quick")
    services.complete_action(user=user, action_id=action.pk)


def bearer(user) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {AccessToken.for_user(user)}".encode())


class Stream:
    def __init__(self, *, query: str = "", headers=(), method: str = "GET") -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": PATH, "raw_path": PATH.encode(), "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", b"localhost")] + list(headers), "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        self.communicator = ApplicationCommunicator(application, scope)

    async def open(self) -> dict:
        await self.communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await self.communicator.receive_output(timeout=3)
        start["headers"] = {key.decode().lower(): value.decode() for key, value in start["headers"]}
        return start

    async def chunk(self, timeout: float = 3) -> str:
        return (await self.communicator.receive_output(timeout=timeout))["body"].decode()

    async def event(self) -> dict:
        fields = dict(line.split(": ", 1) for line in (await self.chunk()).strip().split("\n"))
        fields["data"] = json.loads(fields["data"])
        return fields

    async def silent(self, seconds: float) -> bool:
        return await self.communicator.receive_nothing(timeout=seconds)

    async def close(self) -> None:
        await self.communicator.send_input({"type": "http.disconnect"})
        await self.communicator.wait(timeout=3)


async def error_of(stream: Stream) -> tuple[int, dict]:
    start = await stream.open()
    body = (await stream.communicator.receive_output(timeout=3))["body"]
    assert start["headers"]["content-type"] == "application/json"
    return start["status"], json.loads(body)


async def test_bearer_header_gets_retry_hint_then_snapshot(alice, bob, quick_type):
    await database_sync_to_async(complete)(alice)
    stream = Stream(headers=[bearer(bob)])
    start = await stream.open()
    assert start["status"] == 200
    assert start["headers"]["content-type"] == "text/event-stream"
    assert start["headers"]["cache-control"] == "no-cache"
    assert await stream.chunk() == "retry: 3000\n\n"
    event = await stream.event()
    assert event["event"] == "leaderboard_update"
    assert event["data"]["data"] == [{"rank": 1, "userId": str(alice.pk), "username": "alice", "score": 10}]
    assert event["id"] == str(event["data"]["version"]) and event["data"]["lastUpdated"]
    await stream.close()


async def test_each_change_is_an_event(alice, quick_type):
    stream = Stream(query=f"token={AccessToken.for_user(alice)}")
    await stream.open()
    await stream.chunk()
    first = await stream.event()
    await database_sync_to_async(complete)(alice)
    event = await stream.event()
    assert [(e["username"], e["score"]) for e in event["data"]["data"]] == [("alice", 10)]
    assert int(event["id"]) > int(first["id"])
    await stream.close()


async def test_session_cookie_works(alice):
    client = Client()
    await database_sync_to_async(client.force_login)(alice)
    stream = Stream(headers=[(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())])
    assert (await stream.open())["status"] == 200
    await stream.close()


async def test_a_resume_with_the_current_id_still_gets_the_board_a_ban_changed(alice, bob, quick_type):
    from accounts.services import ban_user

    await database_sync_to_async(complete)(alice)
    await database_sync_to_async(complete)(bob)
    version = (await database_sync_to_async(broadcast.current_board)()).version
    await database_sync_to_async(ban_user)(user_id=alice.pk)  # the board changes; its version does not
    stream = Stream(headers=[bearer(bob), (b"last-event-id", str(version).encode())])
    await stream.open()
    assert await stream.chunk() == "retry: 3000\n\n"
    event = await stream.event()
    assert int(event["id"]) == version and [e["username"] for e in event["data"]["data"]] == ["bob"]
    await database_sync_to_async(complete)(bob)
    event = await stream.event()
    assert int(event["id"]) > version and event["data"]["data"][0]["score"] == 20
    await stream.close()


async def test_older_last_event_id_gets_the_snapshot_at_once(alice, quick_type):
    await database_sync_to_async(complete)(alice)
    await database_sync_to_async(complete)(alice)
    version = (await database_sync_to_async(broadcast.current_board)()).version
    stream = Stream(headers=[bearer(alice), (b"last-event-id", str(version - 1).encode())])
    await stream.open()
    await stream.chunk()
    event = await stream.event()
    assert int(event["id"]) == version and event["data"]["data"][0]["score"] == 20
    await stream.close()


async def test_keep_alive_comment_when_idle(settings, alice):
    settings.LIVE_SSE_KEEPALIVE_SECONDS = 0.3
    stream = Stream(headers=[bearer(alice)])
    await stream.open()
    await stream.chunk()
    await stream.event()
    assert await stream.chunk(timeout=2) == ": keep-alive\n\n"
    assert await stream.chunk(timeout=2) == ": keep-alive\n\n"
    await stream.close()


async def test_no_credentials_is_401_in_the_error_shape():
    status, body = await error_of(Stream())
    assert status == 401 and body["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("header", [b"Bearer garbage", b"Bearer "])
async def test_bad_bearer_token_is_401(header):
    status, body = await error_of(Stream(headers=[(b"authorization", header)]))
    assert status == 401 and body["error"]["code"] in {"invalid_token", "not_authenticated"}


async def test_bad_query_token_is_401():
    status, body = await error_of(Stream(query="token=garbage"))
    assert (status, body["error"]["code"]) == (401, "invalid_token")


async def test_anonymous_stream_when_the_setting_allows(settings):
    settings.LIVE_ALLOW_ANONYMOUS = True
    stream = Stream()
    assert (await stream.open())["status"] == 200
    await stream.chunk()
    assert (await stream.event())["data"]["data"] == []
    await stream.close()


async def test_post_is_405_json(alice):
    status, body = await error_of(Stream(method="POST", headers=[bearer(alice)]))
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")


async def test_sse_connections_are_limited_per_user_and_released(alice, quick_type, settings):
    from scores import connection_limits

    settings.MAX_CONNECTIONS_PER_USER = 2
    first, second = Stream(headers=[bearer(alice)]), Stream(headers=[bearer(alice)])
    assert (await first.open())["status"] == 200
    assert (await second.open())["status"] == 200
    status, body = await error_of(Stream(headers=[bearer(alice)]))
    assert (status, body["error"]["code"]) == (429, "too_many_connections")
    await first.close()
    assert connection_limits.open_connections(user_id=alice.pk) == 1
    await second.close()
    assert connection_limits.open_connections(user_id=alice.pk) == 0


async def test_banned_user_cannot_open_a_stream(alice, quick_type):
    from accounts.services import ban_user

    await database_sync_to_async(ban_user)(user_id=alice.pk)
    status, body = await error_of(Stream(headers=[bearer(alice)]))
    assert (status, body["error"]["code"]) == (403, "banned")


async def test_unreachable_connection_counter_with_fail_closed_is_503_with_retry_after(alice, settings):
    from tests.scoreboard_project.test_ratelimits import _counters_on_dead_redis

    _counters_on_dead_redis(settings)
    settings.RATELIMIT_FAIL_OPEN = False
    start = await Stream(headers=[bearer(alice)]).open()
    assert (start["status"], start["headers"]["retry-after"]) == (503, "2")
    assert start["headers"]["content-type"] == "application/json"


async def test_sse_gauge_counts_open_streams(alice):
    from tests.test_observability import metric

    read = database_sync_to_async(lambda: metric(Client(), "scoreboard_sse_connections"))
    before = await read()
    stream = Stream(headers=[bearer(alice)])
    assert (await stream.open())["status"] == 200
    await stream.chunk()  # retry hint: the stream is running
    assert await read() == before + 1
    await stream.close()
    assert await read() == before


@pytest.mark.redis
async def test_a_relay_that_started_while_the_layer_was_down_feeds_its_viewers_once_it_is_back(
    settings, alice, bob, quick_type, caplog
):
    from channels.layers import channel_layers

    redis_address = urlsplit(settings.REDIS_URL)
    proxy = TcpProxy((redis_address.hostname, redis_address.port or 6379))
    proxy.set_mode("refuse")
    layers = json.loads(json.dumps(settings.CHANNEL_LAYERS))
    layers["default"]["CONFIG"]["hosts"][0]["address"] = settings.REDIS_URL.replace(
        redis_address.netloc, f"127.0.0.1:{proxy.port}")
    settings.CHANNEL_LAYERS = layers  # the channel layer only: the board and the connection counts stay up
    channel_layers.backends.clear()
    try:
        stream = Stream(headers=[bearer(bob)])
        assert (await stream.open())["status"] == 200
        await stream.chunk()  # retry hint
        assert (await stream.event())["data"]["data"] == []  # the join read its own snapshot
        await asyncio.sleep(relay._LAYER_RETRY_SECONDS * 3.5)  # the relay retries its subscription meanwhile
        proxy.set_mode("forward")
        await asyncio.sleep(relay._LAYER_RETRY_SECONDS * 2.5)
        logged = [record for record in caplog.records if record.name == "scores.relay"]
        assert sum(record.exc_info is not None for record in logged) == 1  # a traceback once, not every retry
        assert "working again" in logged[-1].getMessage()

        await database_sync_to_async(complete)(alice)
        event = await stream.event()
        assert [(e["username"], e["score"]) for e in event["data"]["data"]] == [("alice", 10)]
        await stream.close()
    finally:
        proxy.close()
        channel_layers.backends.clear()


async def test_a_ban_ends_the_users_open_websockets_and_streams_and_no_one_elses(alice, bob, quick_type):
    from accounts.services import ban_user
    from scores import connection_limits
    from tests.scores.live_clients import connect, receive, token

    socket, _, _ = await connect(f"/ws/scoreboard?token={token(alice)}")
    await receive(socket)
    bystander, _, _ = await connect(f"/ws/scoreboard?token={token(bob)}")
    await receive(bystander)
    stream = Stream(headers=[bearer(alice)])
    assert (await stream.open())["status"] == 200
    await stream.chunk()  # retry hint
    await stream.event()  # snapshot

    await database_sync_to_async(ban_user)(user_id=alice.pk)

    told = await receive(socket)
    assert told["type"] == "error" and told["error"]["code"] == "banned"
    assert await socket.receive_output(timeout=3) == {"type": "websocket.close", "code": 4403}
    await socket.disconnect()
    ended = await stream.event()
    assert ended["event"] == "error" and ended["data"]["error"]["code"] == "banned"
    assert (await stream.communicator.receive_output(timeout=3)).get("more_body", False) is False
    count = await database_sync_to_async(connection_limits.open_connections)(user_id=alice.pk)
    assert count == 0

    await database_sync_to_async(complete)(bob)  # the bystander still watches
    while (board := await receive(bystander))["type"] != "top_scores_update":
        pass
    assert [entry["username"] for entry in board["payload"]] == ["bob"]
    await bystander.disconnect()
